"""End-to-end test support: a real Celery worker process and real lesion images."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from benchmarks.support import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]


def served_model_dir() -> Path:
    """The artifact the worker will load; skips the test while none has been trained yet."""
    from inference import ModelArtifactError, default_model_dir, read_metadata

    path = default_model_dir()
    try:
        read_metadata(path)
    except ModelArtifactError as exc:
        # CI must have the committed model; a developer checkout may not have trained one yet.
        if not (path / "metadata.json").exists() and not os.environ.get("CI"):
            pytest.skip(f"no served model artifact yet: {exc}")
        raise
    return path


def worker_database_url() -> str:
    """A DATABASE_URL naming the test database pytest-django created, for the worker."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("end-to-end tests need PostgreSQL (run them through scripts/test.sh)")
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    name: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the worker from taking tasks until the block ends (Celery remote control).

        Lets a test look at a page while its scoring is certainly still pending.
        """
        from webapp.config.celery import app

        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        replies = app.control.cancel_consumer(queue, destination=[self.name], reply=True)
        assert replies, f"the worker {self.name} did not answer the remote control"
        try:
            yield
        finally:
            app.control.add_consumer(queue, destination=[self.name], reply=True)


@contextmanager
def celery_worker(
    *,
    media_root: Path,
    log_dir: Path,
    timeout: float = 90,
    queue: str | None = None,
    broker_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    wait_ready: bool = True,
) -> Iterator[WorkerProcess]:
    """Run `celery -A webapp.config worker` against the test database until the block ends.

    `queue` and `broker_url` give a fault test a worker of its own, which tasks of the shared
    session worker never reach; `extra_args` adds e.g. `--beat` or a prefork pool.
    """
    from webapp.config.celery import app

    if settings.USING_EMBEDDED_BROKER:
        pytest.skip("end-to-end tests need the Redis broker (run them through scripts/test.sh)")
    served_model_dir()
    if queue is None and broker_url is None:
        # Messages left by an earlier, interrupted run would name rows this database lacks.
        app.control.purge()

    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "DJANGO_MEDIA_ROOT": str(media_root),
        "CELERY_BROKER_URL": broker_url or settings.CELERY_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue or settings.CELERY_TASK_DEFAULT_QUEUE,
        # Keeps TensorFlow from starting more threads than the machine has cores.
        "TF_NUM_INTEROP_THREADS": "1",
        **(extra_env or {}),
    }
    log_path = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
    name = f"e2e-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    pool = [] if any(arg.startswith("--pool") for arg in extra_args) else ["--pool=solo"]
    command = [
        sys.executable, "-m", "celery", "-A", "webapp.config", "worker",
        *pool, "--loglevel=INFO", "--without-gossip", "--without-mingle",
        "--without-heartbeat", f"--hostname={name}", *extra_args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    worker = WorkerProcess(process=process, log_path=log_path, name=name)
    try:
        if wait_ready:
            wait_for(
                lambda: " ready." in worker.log(),
                timeout=timeout,
                what="the worker to start",
                worker=worker,
            )
        yield worker
    finally:
        stop_process(process)


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float,
    what: str,
    worker: WorkerProcess | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.log()[-4000:]}")
        time.sleep(0.5)
    log = worker.log()[-4000:] if worker is not None else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{log}")


@dataclass(frozen=True)
class LesionImage:
    path: Path
    probability: float
    high_risk: bool

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


def pick_flagged_image(data_dir: Path, *, candidates: int = 24) -> LesionImage:
    """A real malignant image from the dataset that the served model scores as high risk.

    Picking it with the real model (rather than trusting a label) keeps the tests true to
    whatever model is served, and the threshold situation explicit.
    """
    from inference import load_classifier

    served_model_dir()
    with (data_dir / "manifest.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"] == "malignant"]
    paths = [data_dir / "images" / row["file"] for row in rows[:candidates]]
    classifier = load_classifier(path=None)
    predictions = classifier.predict(paths)
    best = max(zip(paths, predictions, strict=True), key=lambda pair: pair[1].probability)
    if not best[1].high_risk:
        pytest.fail(
            f"the served model flags none of {candidates} malignant images "
            f"(best {best[1].probability:.3f} < threshold {classifier.threshold:.3f})"
        )
    return LesionImage(path=best[0], probability=best[1].probability, high_risk=True)
