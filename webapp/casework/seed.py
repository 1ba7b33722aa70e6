"""Fill the database with many realistic cases, for load tests and benchmarks (never for CI).

Every seeded case has one or two images sharing one stored placeholder file, a finished score
per image (a few of them turned away by the input gate), and for part of the flagged ones a
review; the queue columns on each case are set as
`cases.services.case_queue_refresh` would set them, so the reviewer queue looks like a real one.
It writes every app's rows itself, in bulk, where the apps' services would take hours: the one
place that writes another app's models (see webapp.LAYERS).
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass

import PIL.Image
import PIL.ImageDraw
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from inference.gate import GateReason
from webapp.accounts.models import Role, User
from webapp.audit.models import AuditAction, AuditEvent
from webapp.cases.models import BodySite, Case, Image, ReviewState
from webapp.reviews.models import Decision, Review
from webapp.scoring.models import Prediction, PredictionStatus

SEED_PREFIX = "SEED-"
SEED_USER_PREFIX = "seed-"
PLACEHOLDER_NAME = "seed/placeholder.jpg"
SEED_MODEL_NAME = "EfficientNet-Lite0 (seeded)"
SEED_MODEL_VERSION = "seed-1"
SEED_THRESHOLD = 0.35
# The share of images the input gate turns away: the needs-a-better-image bucket.
SEED_GATED_SHARE = 0.02
CLINICIANS = 20
REVIEWERS = 4


@dataclass(frozen=True)
class SeedSummary:
    cases: int  # seeded cases in the database now
    created: int  # of which this call created
    flagged: int  # seeded cases in the reviewer queue (unreviewed, needing an image, reviewed)
    unreviewed: int


@dataclass(frozen=True)
class _Placeholder:
    name: str
    sha256: str
    width: int
    height: int


def cases_seed(
    *, count: int, reset: bool = False, chunk_size: int = 5000, seed: int = 7
) -> SeedSummary:
    """Make exactly `count` seeded cases exist; with `reset`, delete earlier seeded ones first.

    Idempotent: a second call with the same count adds nothing. About 12% of images are scored
    high risk, about 2% need a better image, and about half of the cases in the queue are
    reviewed, near what a triage clinic sees.
    """
    if reset:
        cases_seed_delete()
    existing = Case.objects.filter(subject_ref__startswith=SEED_PREFIX).count()
    clinicians = _seed_users(role=Role.CLINICIAN, count=CLINICIANS)
    reviewers = _seed_users(role=Role.REVIEWER, count=REVIEWERS)
    placeholder = _placeholder_stored()
    rng = random.Random(seed + existing)
    start = existing
    while start < count:
        end = min(start + chunk_size, count)
        _seed_chunk(
            indexes=range(start, end),
            clinicians=clinicians,
            reviewers=reviewers,
            placeholder=placeholder,
            rng=rng,
        )
        start = end
    if count > existing:
        _seed_spread_in_time()
    seeded = Case.objects.filter(subject_ref__startswith=SEED_PREFIX)
    return SeedSummary(
        cases=seeded.count(),
        created=max(count - existing, 0),
        flagged=seeded.exclude(review_state=ReviewState.NOT_FLAGGED).count(),
        unreviewed=seeded.filter(review_state=ReviewState.UNREVIEWED).count(),
    )


def cases_seed_delete() -> int:
    """Delete every seeded case with its images, scores, reviews and history."""
    statements = (
        "DELETE FROM reviews_review WHERE case_id IN "
        "(SELECT id FROM cases_case WHERE subject_ref LIKE %s)",
        "DELETE FROM audit_auditevent WHERE case_id IN "
        "(SELECT id FROM cases_case WHERE subject_ref LIKE %s)",
        "DELETE FROM scoring_prediction WHERE image_id IN (SELECT id FROM cases_image "
        "WHERE case_id IN (SELECT id FROM cases_case WHERE subject_ref LIKE %s))",
        "DELETE FROM cases_image WHERE case_id IN "
        "(SELECT id FROM cases_case WHERE subject_ref LIKE %s)",
        "DELETE FROM cases_case WHERE subject_ref LIKE %s",
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # Raw deletes: the ORM's collector would load every row of a 100,000-case seed first.
        for statement in statements:
            cursor.execute(statement, [f"{SEED_PREFIX}%"])
        return cursor.rowcount


def _seed_users(*, role: Role, count: int) -> list[User]:
    users = []
    for number in range(count):
        user, created = User.objects.get_or_create(
            username=f"{SEED_USER_PREFIX}{role.value}-{number}", defaults={"role": role}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        users.append(user)
    return users


def _placeholder_stored() -> _Placeholder:
    """Store one small lesion-like JPEG that every seeded image points at."""
    import hashlib

    width = height = 256
    image = PIL.Image.new("RGB", (width, height), (214, 160, 130))
    draw = PIL.ImageDraw.Draw(image)
    draw.ellipse((70, 80, 190, 180), fill=(110, 62, 40))
    draw.ellipse((110, 110, 140, 140), fill=(70, 38, 25))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    content = buffer.getvalue()
    if not default_storage.exists(PLACEHOLDER_NAME):
        default_storage.save(PLACEHOLDER_NAME, ContentFile(content))
    return _Placeholder(
        name=PLACEHOLDER_NAME,
        sha256=hashlib.sha256(content).hexdigest(),
        width=width,
        height=height,
    )


@transaction.atomic
def _seed_chunk(
    *,
    indexes: range,
    clinicians: list[User],
    reviewers: list[User],
    placeholder: _Placeholder,
    rng: random.Random,
) -> None:
    now = timezone.now()
    sites = list(BodySite)
    # Plan each case first: its images' scores decide its place in the queue. Each score is a
    # probability and the input gate's reason ("" when it let the image through).
    plans: list[tuple[int, list[tuple[float, str]], bool]] = []
    for index in indexes:
        image_count = 2 if rng.random() < 0.2 else 1
        scores = [(_probability(rng), _gate_reason(rng)) for _ in range(image_count)]
        plans.append((index, scores, rng.random() < 0.5))

    cases = []
    for index, scores, reviewed in plans:
        flagged = [p for p, reason in scores if p >= SEED_THRESHOLD and not reason]
        gated = any(reason for _, reason in scores)
        # Spread flag times over the last year so date filters and orderings have work to do.
        flagged_at = now - dt.timedelta(minutes=rng.randrange(365 * 24 * 60))
        state = ReviewState.NOT_FLAGGED
        if reviewed and (flagged or gated):
            state = ReviewState.REVIEWED
        elif flagged:
            state = ReviewState.UNREVIEWED
        elif gated:
            state = ReviewState.NEEDS_IMAGE
        cases.append(
            Case(
                subject_ref=f"{SEED_PREFIX}{index:07d}",
                body_site=sites[index % len(sites)],
                created_by=clinicians[index % len(clinicians)],
                review_state=state,
                top_probability=max(flagged) if flagged else None,
                flagged_at=flagged_at if flagged or gated else None,
            )
        )
    Case.objects.bulk_create(cases)

    images = []
    for case, (_, scores, _) in zip(cases, plans, strict=True):
        for _ in scores:
            images.append(
                Image(
                    case=case,
                    file=placeholder.name,
                    sha256=placeholder.sha256,
                    width=placeholder.width,
                    height=placeholder.height,
                    format="JPEG",
                    original_filename="lesion.jpg",
                    uploaded_by=case.created_by,
                )
            )
    Image.objects.bulk_create(images)

    predictions = []
    image_iter: Iterator[Image] = iter(images)
    for case, (_, scores, _) in zip(cases, plans, strict=True):
        for probability, gate_reason in scores:
            high_risk = probability >= SEED_THRESHOLD and not gate_reason
            predictions.append(
                Prediction(
                    image=next(image_iter),
                    status=PredictionStatus.DONE,
                    model_name=SEED_MODEL_NAME,
                    model_version=SEED_MODEL_VERSION,
                    threshold=SEED_THRESHOLD,
                    probability=probability,
                    high_risk=high_risk,
                    label="malignant" if probability >= SEED_THRESHOLD else "benign",
                    gate_reason=gate_reason,
                    attempts=1,
                    started_at=now,
                    finished_at=case.flagged_at if high_risk or gate_reason else now,
                    inference_ms=20,
                )
            )
    Prediction.objects.bulk_create(predictions)

    reviews = []
    prediction_iter: Iterator[Prediction] = iter(predictions)
    for case, (index, scores, reviewed) in zip(cases, plans, strict=True):
        for _ in scores:
            prediction = next(prediction_iter)
            if reviewed and (prediction.high_risk or prediction.gate_reason):
                reviews.append(
                    Review(
                        case=case,
                        prediction=prediction,
                        reviewer=reviewers[index % len(reviewers)],
                        decision=list(Decision)[index % len(Decision)],
                    )
                )
    Review.objects.bulk_create(reviews)

    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=case.created_by,
            action=AuditAction.CASE_CREATED,
            case=case,
            data={"subject_ref": case.subject_ref, "body_site": case.body_site, "seeded": True},
        )
        for case in cases
    )


def _seed_spread_in_time() -> None:
    """Spread seeded cases over time, newest last, as a year of real uploads would be."""
    # created_at is auto_now_add, so bulk_create stamped every row with the same instant.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE cases_case SET created_at = %s - (max_id - id) * interval '5 minutes' "
            "FROM (SELECT max(id) AS max_id FROM cases_case) AS newest "
            "WHERE subject_ref LIKE %s",
            [timezone.now(), f"{SEED_PREFIX}%"],
        )


def _gate_reason(rng: random.Random) -> str:
    """Blank for most images; for a few, why the input gate turned them away."""
    if rng.random() >= SEED_GATED_SHARE:
        return ""
    return rng.choice(list(GateReason)).value


def _probability(rng: random.Random) -> float:
    """A score from a skewed distribution: most lesions low, a tail of high ones."""
    return round(min(max(rng.betavariate(1.2, 4.5), 0.0), 1.0), 4)
