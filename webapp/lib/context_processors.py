from django.http import HttpRequest

from webapp.lib.disclaimer import DISCLAIMER


def disclaimer(request: HttpRequest) -> dict[str, str]:
    """Expose the educational-use notice to every template."""
    return {"disclaimer": DISCLAIMER}
