"""`manage.py health [--worker NAME]`: the /health/ report on stdout, exit status 1 if unhealthy.

For orchestrator probes that run a command: the web container checks itself, a worker
container names its own worker (`--worker celery@$HOSTNAME`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from webapp.health.checks import WORKER_REPLY_TIMEOUT_SECONDS, health_report, worker_replies


class Command(BaseCommand):
    help = "Report database, broker and model health (or one worker's), exit 1 when unhealthy."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--worker", help="ask this Celery worker (e.g. celery@host) instead")
        parser.add_argument("--timeout", type=float, default=WORKER_REPLY_TIMEOUT_SECONDS * 3)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["worker"]:
            healthy, report = self._worker(options["worker"], options["timeout"])
        else:
            healthy, report = health_report(include_workers=False)
        self.stdout.write(json.dumps(report, indent=2))
        if not healthy:
            sys.exit(1)

    def _worker(self, name: str, timeout: float) -> tuple[bool, dict[str, Any]]:
        worker = worker_replies(destination=[name], timeout=timeout).get(name)
        if worker is None:
            return False, {"status": "unavailable", "worker": name, "detail": "no answer"}
        healthy = bool(worker.get("ok"))
        return healthy, {"status": "ok" if healthy else "unavailable", "worker": name, **worker}
