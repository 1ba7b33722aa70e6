"""Scoring: the prediction rows are the queue, and their status column its state machine.

A worker claims the predictions due for scoring in batches (SELECT ... FOR UPDATE SKIP LOCKED)
and drains them until none are left. A Celery message only wakes a worker: it names no row, so
a message lost, repeated or late changes nothing about what is scored. An upload sends one when
it commits, and beat one every SCORING_WAKE_INTERVAL_SECONDS: that one picks up rows whose
wake-up was lost with the broker, and claims left by a worker that died.

Each score lands with the input gate's verdict and a heatmap of what drove it: the overlay PNG
is drawn and stored beside the image while the next batch's forward pass runs, and its name is
recorded in the same transaction as the score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
from celery import current_app
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, models, transaction
from django.db.models import Case, CharField, F, FloatField, Q, Value, When
from django.utils import timezone

from inference import ImageDecodeError
from inference.explain import overlay_png
from inference.gate import GateReason
from webapp.accounts.models import User
from webapp.audit.models import AuditAction
from webapp.audit.services import PendingAuditEvent, audit_record, audit_record_many
from webapp.cases.models import Image
from webapp.cases.services import case_queue_refresh_many
from webapp.scoring.models import Prediction, PredictionStatus

logger = logging.getLogger(__name__)

WAKE_TASK = "scoring.predictions_score"
# One attempt with short socket timeouts: a dead or hung broker must not hold an upload's
# request, and the periodic wake-up stands in for any wake-up that was not sent.
WAKE_TRANSPORT_OPTIONS = {
    "max_retries": 0,
    "interval_start": 0,
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
}
MAX_ATTEMPTS = 3
# A transient failure (storage unreachable, out of memory) is retried by a later wake-up, not
# at once: an immediate retry would mostly meet the same fault and spend the attempts.
RETRY_DELAY = timedelta(seconds=10)
# A drain stops claiming after this long and hands the rest to a fresh wake-up, so a steady
# stream of uploads never keeps one task running into its time limit (webapp.scoring.tasks).
DRAIN_SECONDS = 60
# Long enough for the row, short enough never to carry a whole traceback into the page.
ERROR_MESSAGE_LIMIT = 2000


class ScoreResult(Protocol):
    @property
    def probability(self) -> float: ...
    @property
    def high_risk(self) -> bool: ...
    @property
    def label(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def gate_reason(self) -> GateReason | None: ...
    @property
    def heatmap(self) -> np.ndarray | None: ...


class ScoringModel(Protocol):
    """What scoring needs of a classifier (inference.Classifier provides it)."""

    @property
    def version(self) -> str: ...
    @property
    def threshold(self) -> float: ...
    @property
    def display_name(self) -> str: ...
    def predict(self, images: Sequence[Any]) -> Sequence[ScoreResult]: ...


Scored = tuple[Prediction, ScoreResult]
ForwardResults = tuple[list[ScoreResult | ImageDecodeError], int]


def prediction_create(*, image: Image) -> Prediction:
    """Create a pending prediction for an image; a worker is woken once the data commits."""
    prediction = Prediction.objects.create(image=image, status=PredictionStatus.PENDING)
    # On commit: a worker woken earlier would not find the row. A worker drains every row of
    # the transaction, so an upload of many images sends one wake-up (and waits out a hung
    # broker once). Robust: nothing the hook raises turns a committed upload into an error.
    if not any(hook[1] is scoring_wake for hook in connection.run_on_commit):
        transaction.on_commit(scoring_wake, robust=True)
    return prediction


def scoring_wake() -> bool:
    """Wake one worker to drain the due predictions; False, logged, if the broker failed."""
    try:
        # A connection of its own carries the options above without changing the pooled ones
        # workers rely on. The queue is read per call so a test can route to its own worker.
        # The project's Celery app (webapp.config), found without importing it upwards.
        with current_app.connection_for_write(transport_options=WAKE_TRANSPORT_OPTIONS) as broker:
            current_app.send_task(
                WAKE_TASK,
                queue=settings.CELERY_TASK_DEFAULT_QUEUE,
                retry=False,
                producer=current_app.amqp.Producer(broker, auto_declare=False),
            )
    except Exception:
        logger.warning("Could not wake a scoring worker; the periodic wake-up will", exc_info=True)
        return False
    return True


@transaction.atomic
def predictions_claim(*, limit: int) -> list[Prediction]:
    """Move up to `limit` due predictions to running for this worker; oldest first.

    Due: pending and never tried or past its retry delay, or running on a claim older than
    SCORING_STALE_AFTER_SECONDS (its worker died) with attempts left; of an image not
    withdrawn. SKIP LOCKED lets workers claim side by side without waiting on each other;
    every row locked here is moved, so each claim has one owner, told apart from a later one
    by its start time.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS)
    pending = Q(status=PredictionStatus.PENDING) & (
        Q(attempts=0) | Q(started_at__lt=now - RETRY_DELAY)
    )
    abandoned = Q(
        status=PredictionStatus.RUNNING, started_at__lt=stale_before, attempts__lt=MAX_ATTEMPTS
    )
    # A withdrawn image is no longer scored: its waiting rows stay as they are, unclaimed.
    # Only the predictions are locked, not the images joined to read that.
    ids = list(
        Prediction.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pending | abandoned, image__withdrawn_at__isnull=True)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return []
    claimed = Prediction.objects.filter(pk__in=ids)
    claimed.update(status=PredictionStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    return list(claimed.select_related("image__case").order_by("created_at", "id"))


def predictions_drain(
    *, classifier_loader: Callable[[], ScoringModel], batch_size: int | None = None
) -> int:
    """Score the due predictions batch by batch until none are left; return how many.

    Pipelined: while the forward thread scores one batch, this thread records the previous
    batch's results and claims and reads the next, so database round trips and file reads
    overlap the forward pass. Every row is still settled on its own.
    """
    size = batch_size or settings.SCORING_BATCH_SIZE
    _predictions_give_up()
    batch = predictions_claim(limit=size)
    if not batch:
        return 0
    try:
        classifier = classifier_loader()
    except Exception as exc:
        logger.exception("Loading the classifier failed")
        for prediction in batch:
            _prediction_settle_error(prediction=prediction, exc=exc)
        return len(batch)

    claimed = 0
    claim_until = time.monotonic() + DRAIN_SECONDS
    in_flight: tuple[list[Prediction], Future[ForwardResults]] | None = None
    # One thread runs the model, so forward passes never overlap each other.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward") as forward_thread:
        while batch or in_flight:
            claimed += len(batch)
            rows, images = _batch_read(batch)
            submitted = forward_thread.submit(_timed_predict, classifier, images) if rows else None
            if in_flight:
                _batch_settle(classifier, *in_flight)
            in_flight = (rows, submitted) if submitted else None
            batch = predictions_claim(limit=size) if time.monotonic() < claim_until else []
    if time.monotonic() >= claim_until:
        scoring_wake()
    return claimed


def _predictions_give_up() -> None:
    """Fail rows whose every attempt was cut short, rather than reclaim them forever.

    An image whose scoring kills the worker each time would otherwise never reach the
    clinician as failed.
    """
    stale_before = timezone.now() - timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS)
    exhausted = Prediction.objects.filter(
        status=PredictionStatus.RUNNING, started_at__lt=stale_before, attempts__gte=MAX_ATTEMPTS
    ).select_related("image__case")
    for prediction in exhausted:
        prediction_fail(
            prediction=prediction,
            error=f"Scoring was interrupted {prediction.attempts} times (the worker stopped "
            "before finishing) and will not be tried again.",
        )


def _batch_read(batch: Sequence[Prediction]) -> tuple[list[Prediction], list[bytes]]:
    """The rows whose image file could be read, with its bytes; the others are settled."""
    rows: list[Prediction] = []
    images: list[bytes] = []
    for prediction in batch:
        try:
            with prediction.image.file.open("rb") as handle:
                images.append(handle.read())
        except Exception as exc:
            logger.exception("Reading the image of prediction %s failed", prediction.pk)
            _prediction_settle_error(prediction=prediction, exc=exc)
        else:
            rows.append(prediction)
    return rows, images


def _timed_predict(classifier: ScoringModel, images: Sequence[bytes]) -> ForwardResults:
    started = time.perf_counter()
    results = _classifier_predict_each(classifier, images)
    # Each row carries its share of the batch's time, so the figure stays per image.
    return results, round((time.perf_counter() - started) * 1000 / len(images))


def _classifier_predict_each(
    classifier: ScoringModel, images: Sequence[bytes]
) -> list[ScoreResult | ImageDecodeError]:
    """Score images in one call; an image that will not decode gets its error, not a score."""
    try:
        return list(classifier.predict(images))
    except ImageDecodeError as exc:
        if len(images) == 1:
            return [exc]
    # Uploads are checked before they are stored, so this is rare: score them one by one.
    return [_classifier_predict_each(classifier, [data])[0] for data in images]


def _batch_settle(
    classifier: ScoringModel, rows: list[Prediction], forward: Future[ForwardResults]
) -> None:
    """Wait for a batch's forward pass and record each row's score or error."""
    try:
        results, inference_ms = forward.result()
    except Exception as exc:
        logger.exception("Scoring a batch of %s predictions failed", len(rows))
        for prediction in rows:
            _prediction_settle_error(prediction=prediction, exc=exc)
        return
    scored: list[Scored] = []
    heatmaps: dict[int, str] = {}
    for prediction, result in zip(rows, results, strict=True):
        if isinstance(result, ImageDecodeError):
            _prediction_settle_error(prediction=prediction, exc=result)
            continue
        try:
            heatmap = _heatmap_store(prediction=prediction, result=result)
        except Exception as exc:
            logger.exception("Storing the heatmap of prediction %s failed", prediction.pk)
            _prediction_settle_error(prediction=prediction, exc=exc)
            continue
        if heatmap:
            heatmaps[prediction.pk] = heatmap
        scored.append((prediction, result))
    completed: dict[int, bool] = {}
    try:
        completed = prediction_complete_many(
            scored=scored, classifier=classifier, inference_ms=inference_ms, heatmaps=heatmaps
        )
    finally:
        # A heatmap whose score was not recorded (the transaction failed, or another worker
        # holds the row now and writes its own) is no one's file.
        for pk, name in heatmaps.items():
            if not completed.get(pk):
                _stored_file_delete(name)


def _heatmap_store(*, prediction: Prediction, result: ScoreResult) -> str:
    """Write a score's heatmap as an overlay PNG beside its image; the stored name, or ""."""
    if result.heatmap is None:
        return ""
    png = overlay_png(result.heatmap, width=prediction.image.width, height=prediction.image.height)
    field = Prediction._meta.get_field("heatmap")
    assert isinstance(field, models.FileField)
    return field.storage.save(field.generate_filename(prediction, "heatmap.png"), ContentFile(png))


def _stored_file_delete(name: str) -> None:
    field = Prediction._meta.get_field("heatmap")
    assert isinstance(field, models.FileField)
    try:
        field.storage.delete(name)
    except Exception:
        logger.warning("Could not remove the unused heatmap %s", name, exc_info=True)


def _prediction_settle_error(*, prediction: Prediction, exc: Exception) -> None:
    """Fail a row for good if retrying cannot help or its attempts are spent, else release it."""
    if isinstance(exc, ImageDecodeError):
        # The same bytes will never decode: retrying only delays the answer.
        prediction_fail(prediction=prediction, error=f"The image could not be decoded: {exc}")
        return
    error = f"{type(exc).__name__}: {exc}"
    if prediction.attempts >= MAX_ATTEMPTS:
        error = f"Scoring failed after {prediction.attempts} attempts. {error}"
        prediction_fail(prediction=prediction, error=error)
        return
    error = f"Attempt {prediction.attempts} failed, will retry: {error}"
    Prediction.objects.filter(
        pk=prediction.pk, status=PredictionStatus.RUNNING, started_at=prediction.started_at
    ).update(status=PredictionStatus.PENDING, error_message=error[:ERROR_MESSAGE_LIMIT])


@transaction.atomic
def prediction_complete_many(
    *,
    scored: Sequence[Scored],
    classifier: ScoringModel,
    inference_ms: int,
    heatmaps: Mapping[int, str] | None = None,
) -> dict[int, bool]:
    """Record a batch's scores in one transaction; False for a row no longer ours.

    Each row moves running -> done only if it is still the claim this worker made (same status
    and start time), as if alone. What the batch shares is the statements: one lock, one update
    per group of rows that differ only in probability and heatmap (usually two: flagged and
    not), one audit insert and one queue refresh for all the batch's cases, so the database
    work per batch does not grow with its size.

    `heatmaps` names each row's stored heatmap file, by prediction id. A row the input gate
    turned away is recorded with its reason and never as high risk, whatever its probability.
    """
    if not scored:
        return {}
    # Locked, so another worker cannot reclaim a row between this check and the updates.
    running = dict(
        Prediction.objects.select_for_update()
        .filter(pk__in=[prediction.pk for prediction, _ in scored], status=PredictionStatus.RUNNING)
        .values_list("pk", "started_at")
    )
    completed = {p.pk: running.get(p.pk) == p.started_at for p, _ in scored}
    ours = [(prediction, result) for prediction, result in scored if completed[prediction.pk]]
    if len(ours) < len(scored):
        dropped = [pk for pk, done in completed.items() if not done]
        logger.warning("Predictions %s were reclaimed while scoring; results dropped", dropped)
    if not ours:
        return completed
    heatmaps = heatmaps or {}
    # `bulk_update` would build a CASE over every row for every field; within a group only the
    # probability and the heatmap's name differ.
    groups: dict[tuple[bool, str, str, str], list[tuple[int, float]]] = {}
    for prediction, result in ours:
        shared = (_high_risk(result), str(result.label), str(result.model_version), _gate(result))
        groups.setdefault(shared, []).append((prediction.pk, float(result.probability)))
    finished_at = timezone.now()
    for (high_risk, label, model_version, gate_reason), rows in groups.items():
        Prediction.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            probability=Case(
                *(When(pk=pk, then=Value(value)) for pk, value in rows), output_field=FloatField()
            ),
            heatmap=Case(
                *(When(pk=pk, then=Value(heatmaps.get(pk, ""))) for pk, _ in rows),
                output_field=CharField(),
            ),
            status=PredictionStatus.DONE,
            high_risk=high_risk,
            label=label,
            model_version=model_version,
            gate_reason=gate_reason,
            model_name=classifier.display_name,
            threshold=float(classifier.threshold),
            inference_ms=inference_ms,
            finished_at=finished_at,
            error_message="",
        )
    audit_record_many(
        [
            PendingAuditEvent(
                action=AuditAction.PREDICTION_SCORED,
                case=prediction.image.case,
                data={
                    "image_id": prediction.image_id,
                    "prediction_id": prediction.pk,
                    "probability": float(result.probability),
                    "high_risk": _high_risk(result),
                    "gate_reason": _gate(result) or None,
                    "threshold": float(classifier.threshold),
                    "model_version": str(result.model_version),
                },
            )
            for prediction, result in ours
        ]
    )
    # Every case the batch scored, flagged or not: its place in the queue follows from all its
    # scores (a score the input gate turned away sends it to the reviewers for a better image),
    # in the same three queries.
    scored_cases = {prediction.image.case_id for prediction, _ in ours}
    if scored_cases:
        case_queue_refresh_many(case_ids=scored_cases)
    return completed


def _gate(result: ScoreResult) -> str:
    """The stored form of a result's gate verdict: its reason, or blank for an image it passed."""
    return str(result.gate_reason) if result.gate_reason else ""


def _high_risk(result: ScoreResult) -> bool:
    # The classifier already says so; the database refuses anything else (a check constraint).
    return bool(result.high_risk) and not result.gate_reason


@transaction.atomic
def prediction_fail(*, prediction: Prediction, error: str) -> bool:
    """Fail a running prediction for good with a message the user will read; False if it moved.

    Conditional on the claim the caller saw, so a row another worker has claimed since is left
    to that worker.
    """
    failed = Prediction.objects.filter(
        pk=prediction.pk, status=PredictionStatus.RUNNING, started_at=prediction.started_at
    ).update(
        status=PredictionStatus.FAILED,
        error_message=error[:ERROR_MESSAGE_LIMIT],
        finished_at=timezone.now(),
    )
    if failed != 1:
        return False
    audit_record(
        action=AuditAction.PREDICTION_FAILED,
        actor=None,
        case=prediction.image.case,
        data={
            "image_id": prediction.image_id,
            "prediction_id": prediction.pk,
            "error": error[:500],
        },
    )
    return True


def prediction_record_view(*, prediction: Prediction, viewer: User, via: str = "api") -> None:
    """Note in the case's history that someone read a score (through the API) or its heatmap."""
    audit_record(
        action=AuditAction.PREDICTION_VIEWED,
        actor=viewer,
        case=prediction.image.case,
        data={"via": via, "prediction_id": prediction.pk, "image_id": prediction.image_id},
    )
