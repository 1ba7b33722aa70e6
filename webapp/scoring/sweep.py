"""Hand scoring tasks to the broker, and re-queue predictions whose task never arrived.

An upload commits its pending prediction first and sends the task after; if the broker is
down at that moment the row is kept and `enqueued_at` stays empty. The periodic sweep
(`scoring.prediction_sweep`, scheduled in webapp.config.celery) queues such rows once the
broker is back, and rows whose task was lost with the broker or with a dead worker.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from webapp.scoring.models import Prediction, PredictionStatus

logger = logging.getLogger(__name__)

# Bounds one sweep's work; the next run takes the rest.
SWEEP_BATCH_SIZE = 500
# After a send timed out (the broker accepts connections but does not answer), this process
# sends nothing for a while: the other images of the same upload would each wait out the
# timeout again. Their rows stay unsent, for the sweep. A refused connection fails at once and
# does not count.
HUNG_BROKER_PAUSE_SECONDS = 30.0
_hung_broker_until = 0.0


def _requeue_condition(*, now: datetime) -> Q:
    """Rows whose task is not known to be alive in the broker or in a worker."""
    lost_before = now - timedelta(seconds=settings.SCORING_REQUEUE_AFTER_SECONDS)
    stale_before = now - timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS)
    never_sent = Q(enqueued_at__isnull=True)
    sent_long_ago = Q(enqueued_at__lt=lost_before)
    pending = Q(status=PredictionStatus.PENDING) & (never_sent | sent_long_ago)
    # A running row whose claim went stale belongs to a worker that died mid-task. A row
    # claimed into another task's batch never had a task of its own sent, so an empty
    # `enqueued_at` counts as lost too; a recent one is a re-send still on its way.
    abandoned = (
        _abandoned_condition(now=now)
        & Q(attempts__lt=settings.SCORING_MAX_ATTEMPTS)
        & (never_sent | Q(enqueued_at__lt=stale_before))
    )
    return pending | abandoned


def _abandoned_condition(*, now: datetime) -> Q:
    """Running rows whose claim is older than any live task could hold it."""
    stale_before = now - timedelta(seconds=settings.SCORING_STALE_AFTER_SECONDS)
    return Q(status=PredictionStatus.RUNNING, started_at__lt=stale_before)


def prediction_enqueue(*, prediction_id: int) -> bool:
    """Send a prediction's scoring task unless one is already live; False if none was sent.

    The conditional update on `enqueued_at` is the lock: of two callers (an upload's commit
    hook and a sweep, or two sweeps) only one sees a row count of 1 and sends. A broker
    failure is logged and the mark undone, so the sweep tries again later.
    """
    from webapp.config.celery import app
    from webapp.scoring.tasks import prediction_score

    global _hung_broker_until

    if time.monotonic() < _hung_broker_until:
        logger.warning("Not queuing prediction %s: the broker hung moments ago", prediction_id)
        return False
    now = timezone.now()
    try:
        marked = (
            Prediction.objects.filter(pk=prediction_id)
            .filter(_requeue_condition(now=now))
            .update(enqueued_at=now)
        )
    except DatabaseError:
        # Called after an upload committed: the upload stands even if the database went away
        # a moment later. The row is pending and unmarked, so the sweep will queue it.
        logger.warning("Could not mark prediction %s for queuing", prediction_id, exc_info=True)
        return False
    if marked != 1:
        return False
    started = time.monotonic()
    sent = False
    try:
        # No connection or publish retries, and short socket timeouts: an upload must not hang
        # on a dead or frozen broker when the sweep will retry anyway. A connection of its own
        # carries those options without changing the pooled ones workers rely on. The queue is
        # read per call so that a test can route tasks to a worker of its own.
        options = settings.SCORING_ENQUEUE_TRANSPORT_OPTIONS
        with app.connection_for_write(transport_options=options) as connection:
            prediction_score.apply_async(
                args=(prediction_id,),
                queue=settings.CELERY_TASK_DEFAULT_QUEUE,
                retry=False,
                producer=app.amqp.Producer(connection, auto_declare=False),
            )
        sent = True
    except Exception:
        if time.monotonic() - started >= settings.SCORING_ENQUEUE_TIMEOUT_SECONDS:
            _hung_broker_until = time.monotonic() + HUNG_BROKER_PAUSE_SECONDS
        logger.warning(
            "Could not queue prediction %s; it stays pending for the sweep",
            prediction_id,
            exc_info=True,
        )
    finally:
        # Also when the send was interrupted (a request timed out): a row marked as sent but
        # never sent would wait for the broker's redelivery delay instead of the next sweep.
        if not sent:
            with contextlib.suppress(DatabaseError):
                Prediction.objects.filter(pk=prediction_id, enqueued_at=now).update(
                    enqueued_at=None
                )
    return sent


def prediction_sweep(*, now: datetime | None = None) -> int:
    """Queue predictions left pending too long or abandoned mid-run; return how many."""
    now = now or timezone.now()
    _predictions_give_up(now=now)
    grace_before = now - timedelta(seconds=settings.SCORING_SWEEP_PENDING_AFTER_SECONDS)
    # A fresh upload's own commit hook is about to send its task: leave it that moment.
    candidates = list(
        Prediction.objects.filter(_requeue_condition(now=now), created_at__lt=grace_before)
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:SWEEP_BATCH_SIZE]
    )
    queued = 0
    for prediction_id in candidates:
        if prediction_enqueue(prediction_id=prediction_id):
            queued += 1
        else:
            # The broker is still down (or another sweep took the row): stop for this run.
            still_due = Prediction.objects.filter(
                _requeue_condition(now=timezone.now()), pk=prediction_id
            ).exists()
            if still_due:
                break
    if queued:
        logger.info("Sweep queued %s predictions left waiting", queued)
    return queued


def _predictions_give_up(*, now: datetime) -> None:
    """Fail abandoned rows whose every attempt was cut short, rather than try them forever.

    An image whose scoring kills the worker each time (or a worker that keeps dying) would
    otherwise be reclaimed and re-sent without end, and never reach the clinician as failed.
    """
    from webapp.scoring.services import prediction_abandon

    exhausted = (
        Prediction.objects.filter(
            _abandoned_condition(now=now), attempts__gte=settings.SCORING_MAX_ATTEMPTS
        )
        .select_related("image__case")
        .order_by("created_at", "id")[:SWEEP_BATCH_SIZE]
    )
    for prediction in exhausted:
        if prediction_abandon(prediction=prediction):
            logger.warning(
                "Prediction %s failed: scoring was interrupted on every attempt", prediction.pk
            )
