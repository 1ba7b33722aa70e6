"""The API's own OpenAPI schema, loaded for schemathesis to test the WSGI app against."""

from __future__ import annotations

import django
import schemathesis
from django.core.wsgi import get_wsgi_application
from schemathesis.generation.modes import GenerationMode

django.setup()


def api_schema(*, max_examples: int) -> schemathesis.schemas.BaseSchema:
    """The schema /api/schema/ serves, bound to the app, generating valid and invalid requests."""
    from drf_spectacular.generators import SchemaGenerator

    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = get_wsgi_application()
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=max_examples,
        deterministic=True,
    )
    return schema
