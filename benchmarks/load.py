"""Load test: the app under gunicorn with two workers, 20 clients uploading and polling.

Run from the repository root, with PostgreSQL and Redis on loopback (DATABASE_URL's server and
CELERY_BROKER_URL, default 127.0.0.1):

    .venv/bin/python -m benchmarks.load [--clients 20] [--duration 60]

In a scratch database (dermatriage_bench_load, dropped afterwards), a media folder and a
queue of its own, it starts `gunicorn webapp.config.wsgi --workers 2` on a free loopback port
and one Celery scoring worker, signs in --clients clinicians with API tokens, and for
--duration seconds has each client, in its own thread, upload one image to its case and poll
the prediction until it is done, then start again. Uploads still pending when the time is up
are waited for (bounded). It then prints requests served, errors, p50/p95 latency (all
requests, uploads, polls), and checks in the database that every upload ended `done` and was
scored exactly once (one `prediction.scored` audit event each). Exit status 1 on any error,
lost or twice-scored upload.

Bounded on purpose: at most 50 clients and 300 seconds, every address on loopback.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.support import (
    bench_env,
    django_setup,
    free_port,
    machine,
    scratch_database,
    stop_process,
    summary_ms,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "dermatriage_bench_load"
MAX_CLIENTS = 50
MAX_DURATION_SECONDS = 300
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
POLL_INTERVAL_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 30
DRAIN_TIMEOUT_SECONDS = 180


@dataclass
class ClientStats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"upload": [], "poll": []})
    errors: list[str] = field(default_factory=list)
    uploads: list[int] = field(default_factory=list)  # prediction ids
    unfinished: list[int] = field(default_factory=list)


def lesion_jpeg(seed: int) -> bytes:
    """A 320x240 synthetic lesion, different per client so uploads are not byte-identical."""
    import PIL.Image
    import PIL.ImageDraw

    image = PIL.Image.new("RGB", (320, 240), (214, 160, 130))
    draw = PIL.ImageDraw.Draw(image)
    offset = seed % 40
    draw.ellipse((80 + offset, 50, 230 + offset, 190), fill=(90 + seed % 60, 55, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def require_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to run: {what} {host!r} is not on loopback")


def client_loop(
    *, base_url: str, token: str, case_id: int, seed: int, stop_at: float, stats: ClientStats
) -> None:
    """Upload, poll until scored, repeat until `stop_at`; record every request's latency."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    image = lesion_jpeg(seed)

    def timed(kind: str, method: str, url: str, **kwargs: Any) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = session.request(method, url, timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException as exc:
            stats.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        stats.latencies[kind].append(time.perf_counter() - started)
        return response

    while time.monotonic() < stop_at:
        upload = timed(
            "upload",
            "POST",
            f"{base_url}/api/v1/cases/{case_id}/images/",
            files={"images": (f"lesion-{seed}.jpg", image, "image/jpeg")},
        )
        if upload is None or upload.status_code != 201:
            if upload is not None:
                stats.errors.append(f"upload: HTTP {upload.status_code} {upload.text[:200]}")
            time.sleep(POLL_INTERVAL_SECONDS)
            continue
        prediction_id = int(upload.json()[0]["prediction"]["id"])
        stats.uploads.append(prediction_id)
        # Past the end of the run, keep polling this last upload (bounded) so none is left.
        deadline = max(stop_at, time.monotonic()) + DRAIN_TIMEOUT_SECONDS
        while True:
            time.sleep(POLL_INTERVAL_SECONDS)
            poll = timed("poll", "GET", f"{base_url}/api/v1/predictions/{prediction_id}/")
            if poll is not None and poll.status_code != 200:
                stats.errors.append(f"poll: HTTP {poll.status_code} {poll.text[:200]}")
            elif poll is not None and poll.json()["status"] in ("done", "failed"):
                break
            if time.monotonic() > deadline:
                stats.unfinished.append(prediction_id)
                break


def start_processes(
    *, env: dict[str, str], port: int, log_dir: Path
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """gunicorn (two workers) and one Celery scoring worker, logging under log_dir."""
    process_env = {**os.environ, **env, "TF_NUM_INTEROP_THREADS": "1"}
    web_log = (log_dir / "gunicorn.log").open("wb")
    worker_log = (log_dir / "worker.log").open("wb")
    # Commands built here from fixed arguments and this interpreter; nothing from input.
    web = subprocess.Popen(  # noqa: S603
        [
            sys.executable, "-m", "gunicorn", "webapp.config.wsgi",
            "--workers", "2", "--bind", f"127.0.0.1:{port}", "--timeout", "60",
            "--graceful-timeout", "10",
        ],
        cwd=REPO_ROOT, env=process_env, stdout=web_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "webapp.config", "worker",
            "--pool=prefork", "--concurrency=1", "--loglevel=INFO",
            "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT, env=process_env, stdout=worker_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return web, worker


def database_check(prediction_ids: list[int]) -> dict[str, int]:
    """Count, in the database, how the run's uploads ended and how often each was scored."""
    from webapp.audit.models import AuditAction, AuditEvent
    from webapp.scoring.models import Prediction

    statuses = Counter(
        Prediction.objects.filter(pk__in=prediction_ids).values_list("status", flat=True)
    )
    scored = Counter(
        int(value)
        for value in AuditEvent.objects.filter(action=AuditAction.PREDICTION_SCORED).values_list(
            "data__prediction_id", flat=True
        )
    )
    return {
        "uploads": len(prediction_ids),
        "rows": sum(statuses.values()),
        "done": statuses.get("done", 0),
        "failed": statuses.get("failed", 0),
        "pending_or_running": statuses.get("pending", 0) + statuses.get("running", 0),
        "scored_exactly_once": sum(1 for pk in prediction_ids if scored.get(pk) == 1),
        "scored_more_than_once": sum(1 for pk in prediction_ids if scored.get(pk, 0) > 1),
        "lost": len(set(prediction_ids)) - sum(statuses.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be between 1 and {MAX_CLIENTS}")
    if not 1 <= args.duration <= MAX_DURATION_SECONDS:
        parser.error(f"--duration must be between 1 and {MAX_DURATION_SECONDS}")

    queue = f"dermatriage-load-{os.getpid()}"
    media_root = Path(tempfile.mkdtemp(prefix="dermatriage-load-"))
    with scratch_database(DATABASE_NAME) as database_url:
        env = bench_env(database_url=database_url, media_root=media_root, queue=queue)
        require_loopback(env["DATABASE_URL"], "the database")
        require_loopback(env["CELERY_BROKER_URL"], "the broker")
        django_setup(env)
        try:
            return run(args=args, env=env, media_root=media_root)
        finally:
            from django.db import connections

            connections.close_all()
            shutil.rmtree(media_root, ignore_errors=True)


def run(*, args: argparse.Namespace, env: dict[str, str], media_root: Path) -> int:
    from webapp.accounts.models import Role
    from webapp.accounts.services import api_token_issue, user_create
    from webapp.cases.models import BodySite
    from webapp.cases.services import case_create

    accounts = []
    for number in range(args.clients):
        user = user_create(
            username=f"load-clinician-{number}", password=os.urandom(16).hex(), role=Role.CLINICIAN
        )
        _, token_key = api_token_issue(user=user, request=None)
        case = case_create(
            created_by=user, subject_ref=f"LOAD-{number:03d}", body_site=BodySite.TRUNK_POSTERIOR
        )
        accounts.append((token_key, case.pk))

    import requests

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_dir = media_root / "logs"
    log_dir.mkdir()
    web, worker = start_processes(env=env, port=port, log_dir=log_dir)
    try:

        def web_up() -> bool:
            try:
                return requests.get(f"{base_url}/health/", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(web_up, timeout=60, what="gunicorn to answer /health/", interval=0.5)
        wait_until(
            lambda: b" ready." in (log_dir / "worker.log").read_bytes(),
            timeout=120,
            what="the scoring worker to start",
            interval=0.5,
        )

        stats = [ClientStats() for _ in accounts]
        started = time.monotonic()
        stop_at = started + args.duration
        threads = [
            threading.Thread(
                target=client_loop,
                kwargs={
                    "base_url": base_url,
                    "token": token,
                    "case_id": case_id,
                    "seed": number,
                    "stop_at": stop_at,
                    "stats": stats[number],
                },
                daemon=True,
            )
            for number, (token, case_id) in enumerate(accounts)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.duration + DRAIN_TIMEOUT_SECONDS + 60)
        elapsed = time.monotonic() - started
    finally:
        stop_process(web)
        stop_process(worker)

    uploads = [pk for each in stats for pk in each.uploads]
    errors = [error for each in stats for error in each.errors]
    unfinished = [pk for each in stats for pk in each.unfinished]
    latencies = {
        kind: [value for each in stats for value in each.latencies[kind]]
        for kind in ("upload", "poll")
    }
    every = latencies["upload"] + latencies["poll"]
    check = database_check(uploads)

    host = machine()
    load = host["load_average_1_5_15"]
    print(f"machine: {host['cpu']}, {host['usable_cores']} cores, load average {load}")
    print(
        f"load: {args.clients} clients for {args.duration:.0f} s (ran {elapsed:.1f} s with the "
        "drain), gunicorn 2 workers, 1 scoring worker"
    )
    print(f"requests served: {len(every)} ({len(every) / elapsed:.1f}/s)")
    print(f"errors: {len(errors)}")
    for error in Counter(errors).most_common(5):
        print(f"  {error[1]} x {error[0]}")
    for kind, values in (("all", every), *latencies.items()):
        figures = summary_ms(values) if values else {"p50_ms": "-", "p95_ms": "-", "n": 0}
        print(
            f"latency {kind:>6}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms "
            f"(n={figures['n']})"
        )
    print(
        "uploads: {uploads}, rows {rows}, done {done}, failed {failed}, still pending/running "
        "{pending_or_running}, scored exactly once {scored_exactly_once}, scored twice or more "
        "{scored_more_than_once}, lost {lost}".format(**check)
    )
    ok = (
        not errors
        and not unfinished
        and check["lost"] == 0
        and check["done"] == check["uploads"]
        and check["scored_exactly_once"] == check["uploads"]
        and check["uploads"] > 0
    )
    print("result:", "OK (zero errors, zero lost, each scored once)" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
