"""What the benchmarks share: the machine's description, timing, a scratch database, Django set
up against it, and the JSON each run writes.

Nothing here touches the developer's database: a benchmark that needs one creates its own
PostgreSQL database on the server that DATABASE_URL names and drops it afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from training.hardware import cpu_flags, cpu_model_name, vector_unit

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
# Only for the throwaway benchmark processes; never a deployment's key.
BENCH_SECRET_KEY = "benchmark-only-key-not-secret"  # noqa: S105


def arguments(doc: str, prog: str) -> argparse.ArgumentParser:
    """A benchmark's parser, described by its docstring's first paragraph, with --json."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, load and how busy the CPU is, so that figures from different
    machines, or from a machine doing other work, are not mixed."""
    cpu = cpu_model_name() or platform.processor() or platform.machine()
    vector = vector_unit(cpu_flags())
    meminfo = Path("/proc/meminfo")
    memory = [line for line in meminfo.read_text().splitlines() if line.startswith("MemTotal:")]
    return {
        "cpu": f"{cpu} ({vector})" if vector else cpu,
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(int(memory[0].split()[1]) / 2**20, 1) if memory else None,
        "load_average_1_5_15": load_average(),
        "cpu_busy_1s": cpu_busy_fraction(),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def cpu_busy_fraction(seconds: float = 1.0) -> float | None:
    """The share of all cores' time spent busy over the next `seconds` (None off Linux).

    What else runs right now, unlike the load average, which still remembers a benchmark that
    finished a minute ago.
    """
    stat = Path("/proc/stat")
    if not stat.is_file():
        return None

    def times() -> tuple[int, int]:
        fields = [int(value) for value in stat.read_text().splitlines()[0].split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]  # guest time is counted in user; idle+iowait

    total_before, idle_before = times()
    time.sleep(seconds)
    total_after, idle_after = times()
    total = total_after - total_before
    return round(1 - (idle_after - idle_before) / total, 3) if total > 0 else None


def durations_s(
    calls: dict[str, Callable[[], object]], *, budget_s: float, most: int = 1000
) -> dict[str, list[float]]:
    """Seconds each call took, timed in turns so that each sees the same load: after one untimed
    call each (tracing, allocation), at least three rounds, then until the budget per call is
    spent or `most` rounds are done."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.perf_counter() + budget_s * len(calls)
    for round_number in range(most):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
        if round_number >= 2 and time.perf_counter() > deadline:
            break
    return times


def images_per_s(call: Callable[[], object], images: int, *, budget_s: float = 3.0) -> float:
    """Images per second through `call`, which handles `images` at a time (median call)."""
    return round(
        images / statistics.median(durations_s({"call": call}, budget_s=budget_s)["call"]), 2
    )


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p95 and max of durations given in seconds, in milliseconds."""
    ms = sorted(value * 1000 for value in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {
        "p50_ms": round(cuts[49], 2),
        "p95_ms": round(cuts[94], 2),
        "max_ms": round(ms[-1], 2),
        "n": len(ms),
    }


def database_url(name: str) -> str:
    """The URL of database `name` on the server that DATABASE_URL (or BENCH_DATABASE_URL) names."""
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL")
    parts = urlsplit(server or DEFAULT_SERVER_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextmanager
def scratch_django(purpose: str) -> Iterator[tuple[dict[str, str], Path]]:
    """Set this process's Django up on a fresh database, folder and Celery queue of this run's
    own; yield the environment its workers and servers run with, and the folder; then drop
    them."""
    import psycopg
    from psycopg import sql

    # The process id keeps two runs against one server apart.
    name = f"dermatriage_bench_{purpose}_{os.getpid()}"
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    env = {
        "DATABASE_URL": database_url(name),
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or BENCH_SECRET_KEY,
        "DJANGO_DEBUG": "false",
        "DJANGO_MEDIA_ROOT": str(folder / "media"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": name,
    }
    with closing(psycopg.connect(database_url("postgres"), autocommit=True)) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            os.environ.update(env, DJANGO_SETTINGS_MODULE="webapp.config.settings")
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0, interactive=False)
            yield env, folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def lesion_jpegs(count: int) -> tuple[list[bytes], str]:
    """Lesion JPEGs as uploads would bring them, and where they came from: dermoscopy images
    spread over the data set (so that every source is likely represented) when it is here,
    else synthetic lesions."""
    from PIL import Image

    from inference.synthetic import synthetic_lesion
    from training.data import default_data_dir

    files = sorted((default_data_dir() / "images").glob("*.jpg"))
    if files:
        chosen = files[:: max(1, len(files) // count)][:count]
        return [path.read_bytes() for path in chosen], f"{len(chosen)} dermoscopy images"
    jpegs = []
    for seed in range(count):
        buffer = io.BytesIO()
        Image.fromarray(synthetic_lesion(seed)).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return jpegs, f"{count} synthetic 256x256 lesions (no dermoscopy images here)"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process, in MiB (Linux /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    kib = [int(line.split()[1]) for line in status if line.startswith("VmRSS:")]
    return round(kib[0] / 1024, 1) if kib else None


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def finish(
    report: dict[str, Any], figures: Callable[[dict[str, Any]], list[str]], path: Path | None
) -> None:
    """Print a run's figures as BENCHMARKS.md shows them; write them where --json asked."""
    # Load at the end too: a reader can tell whether the background changed during the run.
    report["machine"]["load_average_after"] = load_average()
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print("\n".join(figures(report)))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {path}")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """Ask a server or worker process to stop; kill it if it has not within `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
