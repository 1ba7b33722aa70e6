"""Latency of the reviewer queue, the case page and the API lists on a 100,000-case database.

Run from the repository root (PostgreSQL on DATABASE_URL's server, default 127.0.0.1:5432):

    python -m benchmarks.queue_latency [--count 100000] [--requests 200] [--json PATH]

It creates a scratch database (dermatriage_bench_queue; dropped afterwards unless --keep),
seeds it with `seed_cases`, starts gunicorn with DEBUG off on a free loopback port and times
sequential requests to each page as a signed-in reviewer: p50 and p95 per endpoint, against a
floor measured in the same run (the login page: no database work beyond the session). It also
counts each request's database queries in-process at full size, and prints the plans of the
queue's queries with and without the queue indexes (dropped inside a rolled-back transaction),
so the indexes' effect is a ratio from the same run too.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if not __package__:
    raise SystemExit("run it from the repository root as: python -m benchmarks.queue_latency")

from benchmarks.report import queue_figures
from benchmarks.support import (
    REPO_ROOT,
    bench_env,
    command_line,
    django_setup,
    free_port,
    json_write,
    load_average,
    machine,
    scratch_database,
    stop_process,
    summary_ms,
    wait_until,
)

DATABASE_NAME = "dermatriage_bench_queue"
# The indexes the queue's filters and orderings rely on (cases/models.py).
QUEUE_INDEXES = (
    "case_queue_probability_idx",
    "case_queue_flagged_idx",
    "case_queue_all_probability_idx",
    "case_queue_all_flagged_idx",
)
# (name, path, is_api); a path with {case} opens one of the sampled cases each time.
ENDPOINTS = (
    ("floor: login page", "/accounts/login/", False),
    ("queue page", "/queue/", False),
    ("queue page, all, by flag date", "/queue/?state=all&ordering=-flagged", False),
    ("queue page, page 20", "/queue/?page=20", False),
    ("case page", "/cases/{case}/", False),
    ("case page poll (htmx)", "/cases/{case}/#htmx", False),
    ("API queue", "/api/v1/queue/", True),
    ("API cases", "/api/v1/cases/", True),
    ("API reviews", "/api/v1/reviews/", True),
    ("API case detail", "/api/v1/cases/{case}/", True),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.queue_latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--count", type=int, default=100_000, help="seeded cases")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a kept scratch database (seeding tops up)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {
        "command": command_line(),
        "machine": machine(),
        "count": args.count,
    }
    media_root = Path(tempfile.mkdtemp(prefix="dermatriage-bench-media-"))
    try:
        with scratch_database(DATABASE_NAME, keep=args.keep, reuse=args.reuse) as url:
            env = bench_env(database_url=url, media_root=media_root)
            django_setup(env)
            report.update(seed(args.count))
            fixture = fixtures()
            report["queries_per_request"] = queries_per_request(fixture)
            report["plans"] = plans()
            with gunicorn(env, workers=args.workers) as port:
                report["endpoints"] = time_endpoints(port, fixture, requests=args.requests)
            report["machine"]["load_average_after"] = load_average()
    finally:
        shutil.rmtree(media_root, ignore_errors=True)
    print("\n".join(queue_figures(report)))
    json_write(args.json, report)
    return 0


def seed(count: int) -> dict[str, Any]:
    from django.db import connection

    from webapp.casework.seed import cases_seed

    print(f"seeding {count} cases ...", flush=True)
    started = time.perf_counter()
    summary = cases_seed(count=count)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        # Fresh statistics and a visibility map, as autovacuum would leave a settled database.
        cursor.execute("VACUUM ANALYZE")
    return {
        "seed": {
            "cases": summary.cases,
            "created": summary.created,
            "seconds": round(seconds, 1),
            "flagged": summary.flagged,
            "unreviewed": summary.unreviewed,
        }
    }


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
    for name, path, is_api in ENDPOINTS:
        url, headers = _request_for(path, fixture, random.Random(0), is_api=is_api)
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
    # The median of three runs: the first can pay for a cold cache.
    runs = []
    plan = ""
    for _ in range(3):
        plan = queryset.explain(analyze=True)
        lines = plan.splitlines()
        execution = next(line for line in lines if line.startswith("Execution Time"))
        runs.append(float(execution.split(":")[1].split()[0]))
    return {"plan": plan, "execution_ms": round(sorted(runs)[1], 3)}


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int) -> Iterator[int]:
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "webapp.config.wsgi",
        f"--bind=127.0.0.1:{port}", f"--workers={workers}", "--log-level=warning",
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
    path: str, fixture: dict[str, Any], rng: random.Random, *, is_api: bool
) -> tuple[str, dict[str, str]]:
    headers = (
        {"Authorization": f"Token {fixture['token']}"}
        if is_api
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
    for name, path, is_api in ENDPOINTS:
        durations: list[float] = []
        for number in range(requests + 10):
            url, headers = _request_for(path, fixture, rng, is_api=is_api)
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
