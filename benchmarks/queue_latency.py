"""Latency of the reviewer queue, the case page and the API lists on a large seeded database.

Run from the repository root (PostgreSQL on DATABASE_URL's server, default 127.0.0.1:5432):

    .venv/bin/python -m benchmarks.queue_latency [--count 100000] [--requests 200] [--json PATH]

In a scratch database seeded with `seed_cases`, it starts gunicorn with DEBUG off on a loopback
port and times sequential requests to each page as a signed-in reviewer: p50 and p95 per
endpoint, against a floor measured in the same run (the login page: no database work beyond
the session). It also counts each request's database queries in-process, and times the queue's
queries with and without the queue indexes (dropped inside a rolled-back transaction), so that
the indexes' effect is a ratio from the same run too.
"""

from __future__ import annotations

import http.client
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.report import queue_figures
from benchmarks.support import (
    REPO_ROOT,
    arguments,
    finish,
    free_port,
    machine,
    scratch_django,
    stop_process,
    summary_ms,
    wait_until,
)

# The indexes the queue's filters and orderings rely on (cases/models.py).
QUEUE_INDEXES = (
    "case_queue_probability_idx",
    "case_queue_flagged_idx",
    "case_queue_all_probability_idx",
    "case_queue_all_flagged_idx",
)
# A path with {case} opens one of the sampled cases each time; #htmx asks as htmx would.
ENDPOINTS = {
    "floor: login page": "/accounts/login/",
    "queue page": "/queue/",
    "queue page, all, by flag date": "/queue/?state=all&ordering=-flagged",
    "queue page, page 20": "/queue/?page=20",
    "case page": "/cases/{case}/",
    "case page poll (htmx)": "/cases/{case}/#htmx",
    "API queue": "/api/v1/queue/",
    "API cases": "/api/v1/cases/",
    "API reviews": "/api/v1/reviews/",
    "API case detail": "/api/v1/cases/{case}/",
}


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "benchmarks.queue_latency")
    parser.add_argument("--count", type=int, default=100_000, help="seeded cases")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"machine": machine(), "count": args.count}
    with scratch_django("queue") as (env, _):
        report["seed"] = seed(args.count)
        fixture = fixtures()
        report["queries_per_request"] = queries_per_request(fixture)
        report["plans"] = plans()
        with gunicorn(env) as port:
            report["endpoints"] = time_endpoints(port, fixture, requests=args.requests)
    finish(report, queue_figures, args.json)
    return 0


def seed(count: int) -> dict[str, int]:
    from django.db import connection

    from webapp.casework.seed import cases_seed

    print(f"seeding {count} cases ...", flush=True)
    summary = cases_seed(count=count)
    with connection.cursor() as cursor:
        # Fresh statistics and a visibility map, as autovacuum would leave a settled database.
        cursor.execute("VACUUM ANALYZE")
    return {"cases": summary.cases, "flagged": summary.flagged, "unreviewed": summary.unreviewed}


def fixtures() -> dict[str, Any]:
    """A signed-in reviewer (session cookie and API token) and cases to open."""
    from django.test import Client

    from webapp.accounts.models import User
    from webapp.accounts.services import api_token_issue
    from webapp.cases.models import Case, ReviewState

    reviewer = User.objects.get(username="seed-reviewer-0")
    client = Client()
    client.force_login(reviewer)
    _, token_key = api_token_issue(user=reviewer, request=None)
    flagged = list(
        Case.objects.filter(review_state=ReviewState.UNREVIEWED)
        .order_by("?")
        # Many cases: each case page view adds to that case's history, which the page lists.
        .values_list("pk", flat=True)[:1000]
    )
    return {
        "client": client,
        "session": client.cookies["sessionid"].value,
        "token": token_key,
        "case_ids": flagged,
    }


def queries_per_request(fixture: dict[str, Any]) -> dict[str, int]:
    """Database queries each request runs, counted in this process against the full seed."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts: dict[str, int] = {}
    for name, path in ENDPOINTS.items():
        url, headers = _request_for(path, fixture, random.Random(0))
        extra = {f"HTTP_{key.upper().replace('-', '_')}": value for key, value in headers.items()}
        extra.pop("HTTP_COOKIE", None)
        with CaptureQueriesContext(connection) as queries:
            response = fixture["client"].get(url, **extra)
        if response.status_code not in (200, 286):
            raise SystemExit(f"{name}: {url} answered {response.status_code}")
        counts[name] = len(queries)
    return counts


def plans() -> dict[str, Any]:
    """EXPLAIN ANALYZE of the queue's page queries, with the indexes and without them."""
    from django.db import connection, transaction

    from webapp.reviews.selectors import QueueFilter, QueueOrdering, queue_list

    queries = {
        "unreviewed by probability": queue_list(),
        "unreviewed by flag date": queue_list(ordering=QueueOrdering.FLAGGED_DESC),
        "all by probability": queue_list(state=QueueFilter.ALL),
        "reviewed by flag date": queue_list(
            state=QueueFilter.REVIEWED, ordering=QueueOrdering.FLAGGED_DESC
        ),
    }
    result: dict[str, Any] = {}
    for name, queryset in queries.items():
        page = queryset[:20]
        with_indexes = _explain(page)
        with transaction.atomic():
            with connection.cursor() as cursor:
                for index in QUEUE_INDEXES:
                    cursor.execute(f'DROP INDEX IF EXISTS "{index}"')
            without = _explain(page)
            transaction.set_rollback(True)
        result[name] = {
            "plan": with_indexes["plan"],
            "execution_ms": with_indexes["execution_ms"],
            "without_indexes_ms": without["execution_ms"],
            "speedup": round(without["execution_ms"] / max(with_indexes["execution_ms"], 1e-3), 1),
            "indexes_used": sorted(i for i in QUEUE_INDEXES if i in with_indexes["plan"]),
        }
    return result


def _explain(queryset: Any) -> dict[str, Any]:
    """The plan and the median execution time of three runs: the first may meet a cold cache."""
    plans = [queryset.explain(analyze=True) for _ in range(3)]
    times = [float(p.rsplit("Execution Time:", 1)[1].split()[0]) for p in plans]
    return {"plan": plans[-1], "execution_ms": round(sorted(times)[1], 3)}


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[int]:
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "webapp.config.wsgi",
        f"--bind=127.0.0.1:{port}", "--workers=2", "--log-level=warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **env})  # noqa: S603
    try:
        wait_until(lambda: _answers(port), timeout=60, what="gunicorn to answer")
        yield port
    finally:
        stop_process(process, timeout=20)


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/accounts/login/")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _request_for(
    path: str, fixture: dict[str, Any], rng: random.Random
) -> tuple[str, dict[str, str]]:
    headers = (
        {"Authorization": f"Token {fixture['token']}"}
        if path.startswith("/api/")
        else {"Cookie": f"sessionid={fixture['session']}"}
    )
    if path.endswith("#htmx"):
        path = path.removesuffix("#htmx")
        headers["HX-Request"] = "true"
    return path.replace("{case}", str(rng.choice(fixture["case_ids"]))), headers


def time_endpoints(port: int, fixture: dict[str, Any], *, requests: int) -> dict[str, Any]:
    """Sequential keep-alive requests per endpoint after a warm-up; p50/p95 of each."""
    rng = random.Random(1)
    results: dict[str, Any] = {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for name, path in ENDPOINTS.items():
        durations: list[float] = []
        for number in range(requests + 10):
            url, headers = _request_for(path, fixture, rng)
            started = time.perf_counter()
            connection.request("GET", url, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status not in (200, 286):
                raise SystemExit(f"{name}: {url} answered {response.status}")
            if number >= 10:  # the first requests warm the workers' connections and caches
                durations.append(elapsed)
        results[name] = summary_ms(durations)
    floor = results["floor: login page"]["p95_ms"]
    for row in results.values():
        row["p95_vs_floor"] = round(row["p95_ms"] / floor, 2)
    return results


if __name__ == "__main__":
    sys.exit(main())
