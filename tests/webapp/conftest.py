from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from inference.gate import GateReason
from tests.webapp.e2e import LesionImage, WorkerProcess, celery_worker, pick_flagged_image
from tests.webapp.factories import (
    AdminFactory,
    CaseFactory,
    ClinicianFactory,
    PredictionFactory,
    ReviewerFactory,
)
from webapp.accounts.models import ApiToken, User
from webapp.cases.models import Case
from webapp.cases.services import case_queue_refresh
from webapp.scoring.models import Prediction


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # The production hasher is slow on purpose; the tests create hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Keep each test's uploads in its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def clinician(db: None) -> User:
    return ClinicianFactory.create()


@pytest.fixture
def other_clinician(db: None) -> User:
    return ClinicianFactory.create()


@pytest.fixture
def reviewer(db: None) -> User:
    return ReviewerFactory.create()


@pytest.fixture
def admin_user(db: None) -> User:
    return AdminFactory.create()


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_key(user: User) -> str:
    """A new API token's key for the user (without the sign-in the token endpoint records)."""
    key = secrets.token_hex(20)
    now = timezone.now()
    ApiToken.objects.create(
        user=user, digest=ApiToken.digest_of(key), created_at=now, expires_at=now + timedelta(1)
    )
    return key


def api_client(user: User | None) -> APIClient:
    """An API client authenticated with the user's token, as an integration would be."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_key(user)}")
    return client


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """Keep a WSGI app called directly from closing the test's connection (and transaction).

    Django's own test client does the same: `close_old_connections` runs at the start and
    end of every request, which would end the transaction this test's rows live in.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_tokens(db: None, keep_test_connection: None) -> dict[str, str]:
    """API tokens of a clinician and a reviewer, for requests sent straight to the WSGI app."""
    clinician = ClinicianFactory.create()
    reviewer = ReviewerFactory.create()
    # Something to find: a scored image in the clinician's case, with low ids to guess.
    PredictionFactory.create(image__case__created_by=clinician, flagged=True, with_heatmap=True)
    return {
        "clinician": api_key(clinician),
        "reviewer": api_key(reviewer),
    }


@dataclass
class StubResult:
    probability: float
    high_risk: bool
    label: str
    model_version: str
    gate_reason: GateReason | None = None
    heatmap: np.ndarray | None = None


def stub_heatmap() -> np.ndarray:
    """A small map like the model's, hottest in one corner."""
    heatmap = np.zeros((7, 7), np.float32)
    heatmap[1, 1] = 1.0
    return heatmap


class StubClassifier:
    """A stand-in for inference.Classifier where the scoring service is the unit under test.

    Like the real one, it gives every image a heatmap, and an image its input gate turns away
    (here: every image, when `gate_reason` is given) is never high risk.
    """

    version = "stub-1"
    threshold = 0.5
    display_name = "Stub classifier"

    def __init__(
        self,
        probability: float = 0.8,
        error: Exception | None = None,
        gate_reason: GateReason | None = None,
    ) -> None:
        self.probability = probability
        self.error = error
        self.gate_reason = gate_reason
        self.calls = 0

    def predict(self, images: Sequence[Any]) -> list[StubResult]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        above = self.probability >= self.threshold
        return [
            StubResult(
                probability=self.probability,
                high_risk=above and self.gate_reason is None,
                label="malignant" if above else "benign",
                model_version=self.version,
                gate_reason=self.gate_reason,
                heatmap=stub_heatmap(),
            )
            for _ in images
        ]


@pytest.fixture
def flagged_case(clinician: User) -> Case:
    """A clinician's case with one high-risk score awaiting review."""
    case = CaseFactory.create(created_by=clinician)
    PredictionFactory.create(image__case=case, flagged=True)
    return case_queue_refresh(case_id=case.pk)


@pytest.fixture
def flagged_prediction(flagged_case: Case) -> Prediction:
    return Prediction.objects.get(image__case=flagged_case)


# End-to-end fixtures: one real worker process and one real flagged image per test session.


@pytest.fixture(scope="session")
def e2e_media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-media")


@pytest.fixture(scope="session")
def scoring_worker(
    django_db_setup: None,
    django_db_blocker: Any,
    e2e_media_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """A `celery -A webapp.config worker` process scoring against the test database."""
    with (
        django_db_blocker.unblock(),
        celery_worker(
            media_root=e2e_media_root, log_dir=tmp_path_factory.mktemp("worker-logs")
        ) as worker,
    ):
        yield worker


@pytest.fixture
def e2e(
    settings: Any, transactional_db: None, scoring_worker: WorkerProcess, e2e_media_root: Path
) -> WorkerProcess:
    """Committed data, uploads where the worker reads them, and a running worker."""
    settings.MEDIA_ROOT = e2e_media_root
    return scoring_worker


@pytest.fixture(scope="session")
def flagged_lesion(dermoscopy_data_dir: Path) -> LesionImage:
    return pick_flagged_image(dermoscopy_data_dir)


# Browser tests: one Playwright instance for the whole session (Playwright's sync API allows no
# second one while the first runs), so these fixtures are shared here, not per test module.

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = Path(os.environ.get("DERMATRIAGE_CHROMIUM", "/usr/bin/chromium"))
    if not executable.exists():
        message = f"no chromium at {executable} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # itself are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()
