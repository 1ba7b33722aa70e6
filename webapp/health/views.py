from __future__ import annotations

import ipaddress
import secrets

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from webapp.health.checks import health_report
from webapp.lib.api import RETRY_AFTER_SECONDS


@login_not_required
@never_cache
@require_GET
def health_view(request: HttpRequest) -> JsonResponse:
    """200 when the database, broker and model artifact are usable, 503 otherwise.

    Anyone gets the status alone. Staff, probes sending the health token and probes on a probe
    network also get each component's detail (which names hosts, ports and paths) and may add
    `?workers=1` to ask the scoring workers, which holds the web worker for up to a second.
    """
    detailed = health_caller_trusted(request)
    include_workers = detailed and request.GET.get("workers") in ("1", "true", "yes")
    healthy, report = health_report(include_workers=include_workers)
    if not detailed:
        report = {"status": report["status"]}
    response = JsonResponse(report, status=200 if healthy else 503)
    if not healthy:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def health_caller_trusted(request: HttpRequest) -> bool:
    """Whether the caller may see the health details.

    Staff may; so may the health token's holder, and a probe on a probe network (by default
    the machine itself) that came straight in, not through a proxy: a request a proxy passed
    on carries X-Forwarded-For, however near the proxy is.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    if _from_probe_network(request):
        return True
    expected = settings.HEALTH_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if expected is None or scheme.lower() != "bearer" or not sent:
        return False
    return secrets.compare_digest(sent.strip().encode(), expected.encode())


def _from_probe_network(request: HttpRequest) -> bool:
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.HEALTH_PROBE_NETWORKS)
