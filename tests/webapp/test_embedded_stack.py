"""The embedded defaults under load: SQLite and the filesystem broker, as scripts/run-app.sh
runs them when nothing is configured, with clinicians uploading while a worker scores.

Real processes throughout: gunicorn with two workers and a Celery worker (with its beat), all
sharing one SQLite file and one broker folder in the test's own directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from benchmarks.support import free_port, stop_process
from tests.webapp.e2e import REPO_ROOT, served_model_dir
from tests.webapp.factories import jpeg_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLINICIANS = 4
UPLOADS_EACH = 5
IMAGES_PER_UPLOAD = 3
SCORING_TIMEOUT = 120
DEMO_PASSWORD = "embedded-stack-test-password"
# Whatever points the test run at PostgreSQL and Redis; the embedded stack runs without them.
CONFIGURED = (
    "DATABASE_URL",
    "DATABASE_CONN_MAX_AGE",
    "CELERY_BROKER_URL",
    "CELERY_TASK_DEFAULT_QUEUE",
    "DJANGO_MEDIA_ROOT",
    "DJANGO_STATIC_ROOT",
)


@dataclass
class EmbeddedStack:
    var_dir: Path
    base_url: str
    env: dict[str, str]
    logs: list[Path] = field(default_factory=list)

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in self.logs
        )


def embedded_env(var_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in CONFIGURED}
    env.update(
        DERMATRIAGE_VAR_DIR=str(var_dir),
        DERMATRIAGE_DEMO_PASSWORD=DEMO_PASSWORD,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        TF_NUM_INTEROP_THREADS="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


@contextmanager
def process(
    stack: EmbeddedStack, name: str, command: list[str]
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = stack.var_dir / f"{name}.log"
    stack.logs.append(log_path)
    with log_path.open("wb") as log:
        started = subprocess.Popen(
            command, cwd=REPO_ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield started
    finally:
        stop_process(started, timeout=30)


def wait_until(
    condition: Callable[[], object], *, timeout: float, what: str, stack: EmbeddedStack
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n{stack.log_tail()}")


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
    except requests.ConnectionError:
        return False
    return True


@pytest.fixture
def embedded_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """Migrate, create the demo accounts, start gunicorn and a worker: run-app.sh's steps."""
    served_model_dir()
    var_dir = tmp_path / "var"
    for folder in ("queue", "processed", "control"):
        (var_dir / "broker" / folder).mkdir(parents=True)
    port = free_port()
    stack = EmbeddedStack(
        var_dir=var_dir, base_url=f"http://127.0.0.1:{port}", env=embedded_env(var_dir)
    )
    manage(stack.env, "migrate", "--noinput")
    manage(stack.env, "demo_users")
    worker_command = [
        sys.executable, "-m", "celery", "-A", "webapp.config", "worker", "--loglevel=INFO",
        "--beat", f"--schedule={var_dir / 'celerybeat-schedule'}", "--concurrency=1",
    ]  # fmt: skip
    web_command = [
        sys.executable, "-m", "gunicorn", "webapp.config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", "2", "--no-control-socket",
    ]  # fmt: skip
    with ExitStack() as running:
        running.enter_context(process(stack, "worker", worker_command))
        running.enter_context(process(stack, "web", web_command))
        wait_until(
            lambda: " ready." in stack.logs[0].read_text(errors="replace"),
            timeout=120,
            what="the worker to start",
            stack=stack,
        )
        wait_until(
            lambda: answers(f"{stack.base_url}/health/"),
            timeout=60,
            what="the web server to start",
            stack=stack,
        )
        yield stack


def api_session(stack: EmbeddedStack) -> requests.Session:
    token = requests.post(
        f"{stack.base_url}/api/v1/auth/token/",
        json={"username": "demo-clinician", "password": DEMO_PASSWORD},
        timeout=30,
    )
    assert token.status_code == 200, token.text
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token.json()['token']}"
    return session


def test_clinicians_upload_while_the_worker_scores_and_every_image_is_scored(embedded_stack):
    stack = embedded_stack
    session = api_session(stack)
    failures: list[str] = []
    case_ids: list[int] = []

    def clinician(index: int) -> None:
        client = requests.Session()
        client.headers.update(session.headers)
        created = client.post(
            f"{stack.base_url}/api/v1/cases/",
            json={"subject_ref": f"P-{index}", "body_site": "trunk_anterior"},
            timeout=60,
        )
        if created.status_code != 201:
            failures.append(f"case: {created.status_code} {created.text[:300]}")
            return
        case_id = created.json()["id"]
        case_ids.append(case_id)
        images_url = f"{stack.base_url}/api/v1/cases/{case_id}/images/"
        for upload in range(UPLOADS_EACH):
            files = [
                ("files", (f"lesion-{upload}-{n}.jpg", jpeg_bytes(), "image/jpeg"))
                for n in range(IMAGES_PER_UPLOAD)
            ]
            response = client.post(images_url, files=files, timeout=60)
            if response.status_code != 201:
                failures.append(f"upload: {response.status_code} {response.text[:300]}")
            # And look at the case, as a clinician following the scoring does.
            listing = client.get(images_url, timeout=60)
            if listing.status_code != 200:
                failures.append(f"listing: {listing.status_code} {listing.text[:300]}")

    threads = [threading.Thread(target=clinician, args=(index,)) for index in range(CLINICIANS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(case_ids) == CLINICIANS

    def statuses() -> list[str]:
        found: list[str] = []
        for case_id in case_ids:
            listing = session.get(f"{stack.base_url}/api/v1/cases/{case_id}/images/", timeout=60)
            assert listing.status_code == 200, listing.text
            found += [image["prediction"]["status"] for image in listing.json()["results"]]
        return found

    def all_scored() -> bool:
        found = statuses()
        return len(found) == CLINICIANS * UPLOADS_EACH * IMAGES_PER_UPLOAD and set(found) == {
            "done"
        }

    wait_until(all_scored, timeout=SCORING_TIMEOUT, what="every image to be scored", stack=stack)
    log = stack.log_tail()
    assert "database is locked" not in log
