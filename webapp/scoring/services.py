from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, FloatField, Q, Value, When
from django.utils import timezone

from webapp.audit.models import AuditAction
from webapp.audit.services import PendingAuditEvent, audit_record, audit_record_many
from webapp.scoring.classifier import ScoreResult, ScoringModel
from webapp.scoring.models import Prediction, PredictionStatus

if TYPE_CHECKING:
    from inference import ImageDecodeError
    from webapp.accounts.models import User
    from webapp.cases.models import Image

logger = logging.getLogger(__name__)

# Long enough for the row, short enough never to carry a whole traceback into the page.
ERROR_MESSAGE_LIMIT = 2000
# What a score writes on its row besides the probability; rows of a batch mostly share these.
SHARED_COMPLETED_FIELDS = (
    "status",
    "high_risk",
    "label",
    "model_version",
    "model_name",
    "threshold",
    "inference_ms",
    "finished_at",
    "error_message",
)


class ScoringOutcome(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    RETRY = "retry"  # this attempt failed; the task should be run again later
    BUSY = "busy"  # another worker holds the row; look again once its claim could be stale
    SKIPPED = "skipped"  # nothing to do: already finished, or the row is gone


def prediction_create(*, image: Image) -> Prediction:
    """Create a pending prediction for an image and queue its scoring once the data commits."""
    from webapp.scoring.sweep import prediction_enqueue

    prediction = Prediction.objects.create(image=image, status=PredictionStatus.PENDING)
    # Queued on commit: a worker that picked the task up earlier would not find the row yet.
    # A broker outage is logged, not raised: the row stays pending and the sweep queues it.
    # Robust, so that nothing a hook raises can turn a committed upload into an error.
    transaction.on_commit(partial(prediction_enqueue, prediction_id=prediction.pk), robust=True)
    return prediction


def prediction_claim(*, prediction_id: int, now: datetime | None = None) -> bool:
    """Move a prediction to running for this worker; False if another owns or finished it.

    The conditional update is the lock: of two deliveries of the same task, only one sees a
    row count of 1. A running row whose claim is older than the stale limit belongs to a
    worker that died (its task was redelivered), so it may be claimed again.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS)
    # A stale row whose attempts are spent is the sweep's to fail (prediction_abandon).
    abandoned = Q(
        status=PredictionStatus.RUNNING,
        started_at__lt=stale_before,
        attempts__lt=settings.SCORING_MAX_ATTEMPTS,
    )
    claimed = (
        Prediction.objects.filter(pk=prediction_id)
        .filter(Q(status=PredictionStatus.PENDING) | abandoned)
        .update(status=PredictionStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    )
    return claimed == 1


@transaction.atomic
def prediction_claim_pending(
    *, limit: int, exclude_id: int | None = None, now: datetime | None = None
) -> list[int]:
    """Claim up to `limit` other pending predictions whose own tasks have not started yet.

    Lets one task score a burst of uploads in a single forward pass. Only never-attempted rows
    are taken (attempts == 0): a row waiting out a retry delay keeps its delay. SKIP LOCKED
    lets two workers claim side by side without waiting on each other, and the conditional
    update is the same state-machine step as `prediction_claim`. The rows' own tasks still
    run later, find them done and skip.
    """
    if limit < 1:
        return []
    candidates = (
        Prediction.objects.select_for_update(skip_locked=True)
        .filter(status=PredictionStatus.PENDING, attempts=0)
        .order_by("created_at", "id")
    )
    if exclude_id is not None:
        candidates = candidates.exclude(pk=exclude_id)
    ids = list(candidates.values_list("pk", flat=True)[:limit])
    if not ids:
        return []
    # The rows are locked until this transaction ends, so the update cannot lose a race; the
    # status condition still guards it like every other transition.
    Prediction.objects.filter(pk__in=ids, status=PredictionStatus.PENDING).update(
        status=PredictionStatus.RUNNING,
        started_at=now or timezone.now(),
        attempts=F("attempts") + 1,
    )
    return ids


def prediction_run(
    *,
    prediction_id: int,
    classifier_loader: Callable[[], ScoringModel],
    batch_size: int | None = None,
) -> ScoringOutcome:
    """Claim a prediction, score its image and record the result or the error on the row.

    While it holds its own row it also claims up to `batch_size - 1` other pending rows
    (default `SCORING_BATCH_SIZE`) and scores them all in one forward pass; each row is still
    completed, failed or released on its own. The outcome returned is the one of this row.
    """
    if prediction_id in _finished_here:
        # A drain in this process scored the row already; done and failed are final states.
        return ScoringOutcome.SKIPPED
    status = Prediction.objects.filter(pk=prediction_id).values_list("status", flat=True)
    # Most deliveries after a burst find their row already scored by another task's batch:
    # one read answers them, without trying the claim.
    current = status.first()
    if current is None:
        logger.warning("Prediction %s no longer exists; nothing to score", prediction_id)
        return ScoringOutcome.SKIPPED
    if current in (PredictionStatus.DONE, PredictionStatus.FAILED):
        return ScoringOutcome.SKIPPED
    # One start time for the whole batch: the rows were scored together.
    now = timezone.now()
    if not prediction_claim(prediction_id=prediction_id, now=now):
        return (
            ScoringOutcome.BUSY
            if status.first() == PredictionStatus.RUNNING
            else ScoringOutcome.SKIPPED
        )

    size = settings.SCORING_BATCH_SIZE if batch_size is None else batch_size
    others = prediction_claim_pending(limit=size - 1, exclude_id=prediction_id, now=now)
    first = _claimed_rows([prediction_id, *others])
    if len(first) > 1:
        logger.info("Scoring %s predictions in one batch: %s", len(first), [p.pk for p in first])

    def next_batch() -> list[Prediction]:
        return _claimed_rows(prediction_claim_pending(limit=size))

    outcomes = prediction_batches_score(
        first=first,
        classifier_loader=classifier_loader,
        next_batch=next_batch if size > 1 else None,
        max_batches=settings.SCORING_DRAIN_BATCHES,
    )
    _remember_finished(pk for pk, outcome in outcomes.items() if outcome in FINAL_OUTCOMES)
    return outcomes.get(prediction_id, ScoringOutcome.SKIPPED)


FINAL_OUTCOMES = frozenset({ScoringOutcome.DONE, ScoringOutcome.FAILED})
# Rows this process's drains took to a final state. Their own deliveries still arrive, one per
# upload, after the drain: this answers them without a query. Bounded; the oldest go first.
FINISHED_MEMORY = 50_000
_finished_here: OrderedDict[int, None] = OrderedDict()


def _remember_finished(ids: Iterable[int]) -> None:
    for pk in ids:
        _finished_here[pk] = None
    while len(_finished_here) > FINISHED_MEMORY:
        _finished_here.popitem(last=False)


def _claimed_rows(ids: Sequence[int]) -> list[Prediction]:
    """The rows of just-claimed ids with what settling needs, in claim order."""
    rows = Prediction.objects.select_related("image__case").in_bulk(ids)
    return [rows[pk] for pk in ids if pk in rows]


def prediction_batches_score(
    *,
    first: Sequence[Prediction],
    classifier_loader: Callable[[], ScoringModel],
    next_batch: Callable[[], Sequence[Prediction]] | None = None,
    max_batches: int = 1,
) -> dict[int, ScoringOutcome]:
    """Score `first`, then keep claiming batches with `next_batch` while any are pending.

    Pipelined: while the model scores batch k on the forward thread, this thread records batch
    k-1's results and claims and reads batch k+1, so the database round trips and file reads
    overlap the forward pass instead of following it. Every row is still settled on its own;
    at most `max_batches` batches are scored, so one task does not hold the worker forever
    under a steady stream of uploads.
    """
    outcomes: dict[int, ScoringOutcome] = {}
    try:
        classifier = classifier_loader()
    except Exception as exc:
        logger.exception("Loading the classifier failed")
        for prediction in first:
            outcomes[prediction.pk] = _prediction_settle_error(prediction=prediction, exc=exc)
        return outcomes

    batch: Sequence[Prediction] = first
    in_flight: _ForwardPass | None = None
    scored_batches = 0
    while batch or in_flight is not None:
        readable = _batch_read(batch, outcomes)
        submitted = _ForwardPass.start(classifier, readable) if readable else None
        scored_batches += 1 if batch else 0
        if in_flight is not None:
            _batch_settle(classifier, in_flight, outcomes)
        in_flight = submitted
        batch = next_batch() if next_batch is not None and scored_batches < max_batches else []
        if batch:
            logger.info("Scoring %s more predictions: %s", len(batch), [p.pk for p in batch])
    return outcomes


@dataclass
class _ForwardPass:
    """One batch on its way through the model on the forward thread."""

    readable: list[tuple[Prediction, bytes]]
    future: Future[tuple[list[ScoreResult | ImageDecodeError], int]]

    @classmethod
    def start(
        cls, classifier: ScoringModel, readable: list[tuple[Prediction, bytes]]
    ) -> _ForwardPass:
        images = [data for _, data in readable]
        from inference.threads import process_thread_pool

        # One thread runs the model, so passes never overlap each other.
        forward_thread = process_thread_pool("forward", max_workers=1)
        return cls(readable, forward_thread.submit(_timed_predict, classifier, images))


def _timed_predict(
    classifier: ScoringModel, images: Sequence[bytes]
) -> tuple[list[ScoreResult | ImageDecodeError], int]:
    started = time.perf_counter()
    results = _classifier_predict_each(classifier, images)
    # Each row carries its share of the batch's time, so the figure stays per image.
    return results, round((time.perf_counter() - started) * 1000 / len(images))


def _batch_read(
    predictions: Sequence[Prediction], outcomes: dict[int, ScoringOutcome]
) -> list[tuple[Prediction, bytes]]:
    readable: list[tuple[Prediction, bytes]] = []
    for prediction in predictions:
        try:
            with prediction.image.file.open("rb") as handle:
                readable.append((prediction, handle.read()))
        except Exception as exc:
            logger.exception("Reading the image of prediction %s failed", prediction.pk)
            outcomes[prediction.pk] = _prediction_settle_error(prediction=prediction, exc=exc)
    return readable


def _batch_settle(
    classifier: ScoringModel, forward: _ForwardPass, outcomes: dict[int, ScoringOutcome]
) -> None:
    """Wait for a batch's forward pass and record each row's score or error."""
    from inference import ImageDecodeError

    try:
        results, inference_ms = forward.future.result()
    except Exception as exc:
        logger.exception("Scoring a batch of %s predictions failed", len(forward.readable))
        for prediction, _ in forward.readable:
            outcomes[prediction.pk] = _prediction_settle_error(prediction=prediction, exc=exc)
        return

    scores: list[PredictionScore] = []
    for (prediction, _), result in zip(forward.readable, results, strict=True):
        if isinstance(result, ImageDecodeError):
            # The same bytes will never decode: retrying only delays the answer.
            prediction_fail(
                prediction=prediction, error=f"The image could not be decoded: {result}"
            )
            outcomes[prediction.pk] = ScoringOutcome.FAILED
            continue
        scores.append(
            PredictionScore(
                prediction=prediction,
                probability=float(result.probability),
                high_risk=bool(result.high_risk),
                label=str(result.label),
                model_version=str(result.model_version),
                model_name=classifier.display_name,
                threshold=float(classifier.threshold),
                inference_ms=inference_ms,
            )
        )
    for pk, completed in prediction_complete_many(scores=scores).items():
        outcomes[pk] = ScoringOutcome.DONE if completed else ScoringOutcome.SKIPPED


def _classifier_predict_each(
    classifier: ScoringModel, images: Sequence[bytes]
) -> list[ScoreResult | ImageDecodeError]:
    """Score images in one call; an image that will not decode gets its error, not a score."""
    from inference import ImageDecodeError

    try:
        return list(classifier.predict(images))
    except ImageDecodeError as exc:
        if len(images) == 1:
            return [exc]
    # Uploads are checked before they are stored, so this is rare: find the bad images one by
    # one, then score the good ones together.
    errors: dict[int, ImageDecodeError] = {}
    for index, data in enumerate(images):
        try:
            classifier.predict([data])
        except ImageDecodeError as exc:
            errors[index] = exc
    good = [data for index, data in enumerate(images) if index not in errors]
    scored = iter(classifier.predict(good) if good else [])
    return [errors[index] if index in errors else next(scored) for index in range(len(images))]


def _prediction_settle_error(*, prediction: Prediction, exc: Exception) -> ScoringOutcome:
    """Fail a row for good once its attempts are spent, else release it for a retry."""
    from inference import ImageDecodeError

    if isinstance(exc, ImageDecodeError):
        prediction_fail(prediction=prediction, error=f"The image could not be decoded: {exc}")
        return ScoringOutcome.FAILED
    error = f"{type(exc).__name__}: {exc}"
    if prediction.attempts >= settings.SCORING_MAX_ATTEMPTS:
        prediction_fail(
            prediction=prediction,
            error=f"Scoring failed after {prediction.attempts} attempts. {error}",
        )
        return ScoringOutcome.FAILED
    prediction_release(prediction=prediction, error=error)
    return ScoringOutcome.RETRY


@dataclass(frozen=True)
class PredictionScore:
    """The model's answer for one running prediction, ready to be recorded on its row."""

    prediction: Prediction
    probability: float
    high_risk: bool
    label: str
    model_version: str
    model_name: str
    threshold: float
    inference_ms: int


def prediction_complete(
    *,
    prediction: Prediction,
    probability: float,
    high_risk: bool,
    label: str,
    model_version: str,
    model_name: str,
    threshold: float,
    inference_ms: int,
) -> bool:
    """Record a score on a running prediction; False if the row was no longer ours."""
    score = PredictionScore(
        prediction=prediction,
        probability=probability,
        high_risk=high_risk,
        label=label,
        model_version=model_version,
        model_name=model_name,
        threshold=threshold,
        inference_ms=inference_ms,
    )
    return prediction_complete_many(scores=[score])[prediction.pk]


@transaction.atomic
def prediction_complete_many(*, scores: Sequence[PredictionScore]) -> dict[int, bool]:
    """Record the scores of a batch in one transaction; False for a row no longer ours.

    Each row moves running -> done only if it is still the claim this worker made (same
    status and start time), as if alone. What the batch shares is the statements: one lock,
    one update per group of rows that differ only in probability (usually two: flagged and
    not), one audit insert and one queue refresh for all the flagged cases, so the database
    work per batch does not grow with its size.
    """
    from webapp.cases.services import case_queue_refresh_many

    if not scores:
        return {}
    # Locked, so a sweep or another worker cannot reclaim a row between this check and the
    # updates below.
    running = dict(
        Prediction.objects.select_for_update()
        .filter(pk__in=[score.prediction.pk for score in scores], status=PredictionStatus.RUNNING)
        .values_list("pk", "started_at")
    )
    ours = {
        score.prediction.pk
        for score in scores
        if score.prediction.pk in running
        and running[score.prediction.pk] == score.prediction.started_at
    }
    finished_at = timezone.now()
    done: list[Prediction] = []
    for score in scores:
        prediction = score.prediction
        if prediction.pk not in ours:
            logger.warning(
                "Prediction %s was reclaimed while scoring; result dropped", prediction.pk
            )
            continue
        prediction.status = PredictionStatus.DONE
        prediction.probability = score.probability
        prediction.high_risk = score.high_risk
        prediction.label = score.label
        prediction.model_version = score.model_version
        prediction.model_name = score.model_name
        prediction.threshold = score.threshold
        prediction.inference_ms = score.inference_ms
        prediction.finished_at = finished_at
        prediction.error_message = ""
        done.append(prediction)
    if done:
        _predictions_record_done(done)
        audit_record_many(
            [
                PendingAuditEvent(
                    action=AuditAction.PREDICTION_SCORED,
                    case=prediction.image.case,
                    data={
                        "image_id": prediction.image_id,
                        "prediction_id": prediction.pk,
                        "probability": prediction.probability,
                        "high_risk": prediction.high_risk,
                        "threshold": prediction.threshold,
                        "model_version": prediction.model_version,
                    },
                )
                for prediction in done
            ]
        )
        flagged_cases = {p.image.case_id for p in done if p.high_risk}
        if flagged_cases:
            case_queue_refresh_many(case_ids=flagged_cases)
    return {score.prediction.pk: score.prediction.pk in ours for score in scores}


def _predictions_record_done(done: Sequence[Prediction]) -> None:
    """Write finished rows with one UPDATE per group of rows that differ only in probability.

    `bulk_update` would build a CASE over every row for every field: in a profile of a
    500-upload burst, building those expressions took over half of the scoring task's own
    (non-model) CPU time.
    """
    groups: dict[tuple[object, ...], list[Prediction]] = {}
    for prediction in done:
        shared = tuple(getattr(prediction, name) for name in SHARED_COMPLETED_FIELDS)
        groups.setdefault(shared, []).append(prediction)
    for shared, rows in groups.items():
        probability = (
            Value(rows[0].probability)
            if len(rows) == 1
            else Case(
                *(When(pk=row.pk, then=Value(row.probability)) for row in rows),
                output_field=FloatField(),
            )
        )
        Prediction.objects.filter(pk__in=[row.pk for row in rows]).update(
            probability=probability, **dict(zip(SHARED_COMPLETED_FIELDS, shared, strict=True))
        )


@transaction.atomic
def prediction_fail(*, prediction: Prediction, error: str) -> None:
    """Mark a prediction as failed for good, with a message the user will read."""
    Prediction.objects.filter(pk=prediction.pk).update(
        status=PredictionStatus.FAILED,
        error_message=error[:ERROR_MESSAGE_LIMIT],
        finished_at=timezone.now(),
    )
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


@transaction.atomic
def prediction_abandon(*, prediction: Prediction) -> bool:
    """Fail a running prediction whose claims all died with their worker; False if it moved.

    Conditional on the claim the caller saw, so a row a worker has just claimed again is left
    to that worker.
    """
    error = (
        f"Scoring was interrupted {prediction.attempts} times (the worker stopped before "
        "finishing) and will not be tried again."
    )
    failed = Prediction.objects.filter(
        pk=prediction.pk, status=PredictionStatus.RUNNING, started_at=prediction.started_at
    ).update(status=PredictionStatus.FAILED, error_message=error, finished_at=timezone.now())
    if failed != 1:
        return False
    audit_record(
        action=AuditAction.PREDICTION_FAILED,
        actor=None,
        case=prediction.image.case,
        data={"image_id": prediction.image_id, "prediction_id": prediction.pk, "error": error},
    )
    return True


def prediction_release(*, prediction: Prediction, error: str) -> None:
    """Return a running prediction to pending after a failed attempt that will be retried."""
    Prediction.objects.filter(pk=prediction.pk, status=PredictionStatus.RUNNING).update(
        status=PredictionStatus.PENDING,
        error_message=f"Attempt {prediction.attempts} failed, will retry: {error}"[
            :ERROR_MESSAGE_LIMIT
        ],
    )


def prediction_record_view(*, prediction: Prediction, viewer: User) -> None:
    """Note in the case's history that someone read a score (through the API)."""
    audit_record(
        action=AuditAction.PREDICTION_VIEWED,
        actor=viewer,
        case=prediction.image.case,
        data={"via": "api", "prediction_id": prediction.pk, "image_id": prediction.image_id},
    )
