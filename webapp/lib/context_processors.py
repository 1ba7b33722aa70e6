from django.conf import settings
from django.http import HttpRequest


def disclaimer(request: HttpRequest) -> dict[str, str]:
    """Expose the educational-use notice to every template."""
    return {"disclaimer": settings.DISCLAIMER}
