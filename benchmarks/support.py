"""What the web and worker benchmarks share: the machine's description, a scratch database,
Django set up against it, and percentiles.

Nothing here touches the developer's database: every benchmark creates its own PostgreSQL
database (dropped afterwards unless asked to keep it) on the server that DATABASE_URL names.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
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


def machine(*, sample_busy: bool = True) -> dict[str, Any]:
    """CPU model, cores, memory and load, so figures from different machines are not mixed.

    With `sample_busy`, also how busy the CPU is over the next second (see
    `cpu_busy_fraction`): what a run about to start would compete with.
    """
    cpu = cpu_model_name() or platform.processor() or platform.machine()
    vector = vector_unit(cpu_flags())
    if vector:
        cpu = f"{cpu} ({vector})"
    memory_gib: float | None = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib,
        "load_average_1_5_15": load_average(),
        "cpu_busy_1s": cpu_busy_fraction() if sample_busy else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [round(value, 2) for value in load]


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
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle  # guest time is already counted in user time

    total_before, idle_before = times()
    time.sleep(seconds)
    total_after, idle_after = times()
    total = total_after - total_before
    return round(1 - (idle_after - idle_before) / total, 3) if total > 0 else None


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the values fall (linear interpolation)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p95, max and mean of durations given in seconds, in milliseconds."""
    ms = [value * 1000 for value in seconds]
    return {
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "n": len(ms),
    }


def server_url() -> str:
    """A URL of the PostgreSQL server to make scratch databases on (its database is ignored)."""
    return (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or (DEFAULT_SERVER_URL)
    )


def database_url(name: str) -> str:
    """The server's URL with the database name replaced."""
    parts = urlsplit(server_url())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect(database_url("postgres"), autocommit=True)


def database_exists(name: str) -> bool:
    with closing(_admin_connection()) as admin:
        row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        return row is not None


def database_drop(name: str) -> None:
    from psycopg import sql

    with closing(_admin_connection()) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def scratch_database(name: str, *, keep: bool = False, reuse: bool = False) -> Iterator[str]:
    """Create a fresh database `name` (or reuse it), yield its URL, then drop it."""
    from psycopg import sql

    if not name.startswith("dermatriage_bench"):
        raise SystemExit(f"refusing to use {name!r}: scratch databases are dermatriage_bench*")
    if not (reuse and database_exists(name)):
        database_drop(name)
        with closing(_admin_connection()) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        if not keep:
            database_drop(name)


def bench_env(*, database_url: str, media_root: Path, queue: str | None = None) -> dict[str, str]:
    """The environment a benchmark's Django processes (itself, workers, servers) run with."""
    env = {
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or BENCH_SECRET_KEY,
        "DJANGO_DEBUG": "false",
        "DJANGO_MEDIA_ROOT": str(media_root),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DJANGO_LOG_LEVEL": os.environ.get("DJANGO_LOG_LEVEL", "WARNING"),
        "DATABASE_CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL,
    }
    if queue is not None:
        env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    return env


def django_setup(env: dict[str, str]) -> None:
    """Point this process's Django at the scratch database and start it."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.config.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process and its children, in MiB (Linux /proc)."""
    total_kib = 0
    pids = [pid, *_children(pid)]
    for each in pids:
        status = Path(f"/proc/{each}/status")
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return round(total_kib / 1024, 1) if total_kib else None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:
            continue
    return [*found, *(grand for child in found for grand in _children(child))]


def wait_until(condition: Any, *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def json_write(path: Path | None, report: dict[str, Any]) -> None:
    """Write a benchmark's figures, with when it finished, where --json asked for them."""
    if path is None:
        return
    finished = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report, "finished_at": finished}, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")


def command_line() -> str:
    """How this benchmark was started, as someone would type it at the repository root."""
    module = sys.modules["__main__"].__spec__
    name = module.name if module is not None else sys.argv[0]
    return " ".join([".venv/bin/python -m", name, *sys.argv[1:]])


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
