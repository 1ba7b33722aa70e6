from __future__ import annotations

import hashlib
import io
import itertools
from typing import Any

import factory
import numpy as np
import PIL.Image
from django.core.files.base import ContentFile
from django.utils import timezone

from inference.explain import overlay_png
from inference.gate import GateReason
from webapp.accounts.models import Role, User
from webapp.cases.models import BodySite, Case, Image
from webapp.reviews.models import Decision, Review
from webapp.scoring.models import Prediction, PredictionStatus

PASSWORD = "correct-horse-battery-staple"


_colours = itertools.count()


def distinct_colour() -> tuple[int, int, int]:
    """A colour no earlier call gave (for thousands of calls), far enough apart to survive JPEG."""
    n = next(_colours) % 3000
    return (100 + (n // 60) * 3, 40 + (n % 60) * 3, 60)


def jpeg_bytes(
    *, size: tuple[int, int] = (64, 48), color: tuple[int, int, int] | None = None
) -> bytes:
    """A small, valid JPEG, of a colour of its own unless given: two uploads, two images."""
    buffer = io.BytesIO()
    PIL.Image.new("RGB", size, color or distinct_colour()).save(buffer, format="JPEG")
    return buffer.getvalue()


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    role = Role.CLINICIAN
    password = factory.django.Password(PASSWORD)


class ClinicianFactory(UserFactory):
    username = factory.Sequence(lambda n: f"clinician{n}")
    role = Role.CLINICIAN


class ReviewerFactory(UserFactory):
    username = factory.Sequence(lambda n: f"reviewer{n}")
    role = Role.REVIEWER


class AdminFactory(UserFactory):
    """An admin as user_create makes one: staff by role, not a superuser."""

    username = factory.Sequence(lambda n: f"admin{n}")
    role = Role.ADMIN
    is_staff = True


class SuperuserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"superuser{n}")
    is_staff = True
    is_superuser = True


class CaseFactory(factory.django.DjangoModelFactory[Case]):
    class Meta:
        model = Case

    subject_ref = factory.Sequence(lambda n: f"SUBJ-{n:05d}")
    body_site = BodySite.TRUNK_POSTERIOR
    created_by = factory.SubFactory(ClinicianFactory)


class ImageFactory(factory.django.DjangoModelFactory[Image]):
    class Meta:
        model = Image

    class Params:
        content = factory.LazyFunction(jpeg_bytes)

    case = factory.SubFactory(CaseFactory)
    file = factory.LazyAttribute(lambda o: ContentFile(o.content, name="lesion.jpg"))
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.content).hexdigest())
    width = 64
    height = 48
    format = "JPEG"
    original_filename = "lesion.jpg"
    uploaded_by = factory.SelfAttribute("case.created_by")


# What every finished score has in common; the traits below differ only in the verdict.
_SCORED = {
    "status": PredictionStatus.DONE,
    "threshold": 0.5,
    "model_name": "Test model",
    "model_version": "test-1",
    "attempts": 1,
    "started_at": factory.LazyFunction(timezone.now),
    "finished_at": factory.LazyFunction(timezone.now),
}


def heatmap_png(*, width: int = 64, height: int = 48) -> bytes:
    """An overlay PNG as the worker stores one, for an image of this size."""
    heatmap = np.zeros((7, 7), np.float32)
    heatmap[1, 1] = 1.0
    return overlay_png(heatmap, width=width, height=height)


class PredictionFactory(factory.django.DjangoModelFactory[Prediction]):
    class Meta:
        model = Prediction
        skip_postgeneration_save = True

    image = factory.SubFactory(ImageFactory)
    status = PredictionStatus.PENDING

    class Params:
        done = factory.Trait(**_SCORED, probability=0.3, high_risk=False, label="benign")
        flagged = factory.Trait(**_SCORED, probability=0.9, high_risk=True, label="malignant")
        # Scored above the threshold, but of an image the input gate turned away.
        gated = factory.Trait(
            **_SCORED,
            probability=0.9,
            high_risk=False,
            label="malignant",
            gate_reason=GateReason.NOT_DERMOSCOPIC.value,
        )

    @factory.post_generation
    def with_heatmap(self: Prediction, create: bool, extracted: bool, **kwargs: object) -> None:
        """`with_heatmap=True` stores a heatmap beside the image, named after the saved row."""
        if create and extracted:
            png = heatmap_png(width=self.image.width, height=self.image.height)
            self.heatmap.save("heatmap.png", ContentFile(png), save=True)


class ReviewFactory(factory.django.DjangoModelFactory[Review]):
    """A review row, superseding the score's standing one as reviews.services would."""

    class Meta:
        model = Review

    prediction = factory.SubFactory(PredictionFactory, flagged=True)
    case = factory.SelfAttribute("prediction.image.case")
    reviewer = factory.SubFactory(ReviewerFactory)
    decision = Decision.AGREE

    @classmethod
    def _create(cls, model_class: type[Review], *args: Any, **kwargs: Any) -> Review:
        standing = Review.objects.filter(prediction=kwargs["prediction"], superseded_at=None)
        previous = list(standing.values_list("pk", flat=True))
        standing.update(superseded_at=timezone.now())
        review = super()._create(model_class, *args, **kwargs)
        Review.objects.filter(pk__in=previous).update(superseded_by=review)
        return review
