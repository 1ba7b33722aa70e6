from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from django.db.models import QuerySet

from webapp.accounts.models import User
from webapp.accounts.roles import user_sees_all_cases
from webapp.cases.models import Case, Image


def case_list(*, user: User) -> QuerySet[Case]:
    """Return the cases the user may see: their own, or every case for reviewers and admins."""
    cases = Case.objects.select_related("created_by")
    if user_sees_all_cases(user):
        return cases.all()
    return cases.filter(created_by=user)


def case_get(*, user: User, case_id: int) -> Case:
    """Return one case the user may see; Case.DoesNotExist (a 404) for any other."""
    return case_list(user=user).get(pk=case_id)


def case_image_get(*, user: User, case_id: int, image_id: int) -> Image:
    """Return one image of a case the user may see; Image.DoesNotExist otherwise."""
    case = case_get(user=user, case_id=case_id)
    return Image.objects.get(case=case, pk=image_id)


def case_find(*, case_id: int) -> Case | None:
    """Return the case with this id whoever may see it, or None: to record a refusal against it."""
    return Case.objects.filter(pk=case_id).first()


def image_label(*, position: int, total: int, filename: str) -> str:
    """The one name an image goes by on every page: its place in the case and its file name."""
    return f"Image {position} of {total} ({filename or 'unnamed'})"


@dataclass(frozen=True)
class ImageLabels:
    """Labels of images (see `image_label`), found by image id or by the id of a score of one."""

    by_image: dict[int, str] = field(default_factory=dict)
    by_prediction: dict[int, str] = field(default_factory=dict)


def image_labels(*, case_ids: Collection[int]) -> ImageLabels:
    """Return the labels of every image of the given cases, in one query.

    Scores are found through the relation scoring declares on Image (`predictions`), by name.
    """
    rows = (
        Image.objects.filter(case_id__in=case_ids)
        .order_by("case_id", "uploaded_at", "id")
        .values_list("id", "case_id", "original_filename", "predictions__id")
    )
    images: dict[int, list[tuple[int, str]]] = {}
    prediction_images: dict[int, int] = {}
    seen: set[int] = set()
    for image_id, case_id, filename, prediction_id in rows:
        if image_id not in seen:
            seen.add(image_id)
            images.setdefault(case_id, []).append((image_id, filename))
        if prediction_id is not None:
            prediction_images[prediction_id] = image_id
    labels = ImageLabels()
    for case_images in images.values():
        for position, (image_id, filename) in enumerate(case_images, start=1):
            labels.by_image[image_id] = image_label(
                position=position, total=len(case_images), filename=filename
            )
    for prediction_id, image_id in prediction_images.items():
        labels.by_prediction[prediction_id] = labels.by_image[image_id]
    return labels
