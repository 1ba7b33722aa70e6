from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

# htmx stops polling an element when the server answers with this status.
HTMX_STOP_POLLING = 286


class HtmxHttpRequest(HttpRequest):
    """A request as HtmxMiddleware leaves it, for the type checker."""

    htmx: HtmxDetails
