from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from webapp.accounts.models import User
from webapp.accounts.roles import user_sees_all_cases
from webapp.cases.models import Case, Image
from webapp.scoring.models import Prediction, PredictionStatus


def case_list(*, user: User) -> QuerySet[Case]:
    """Return the cases the user may see: their own, or every case for reviewers and admins."""
    cases = Case.objects.select_related("created_by")
    if user_sees_all_cases(user):
        return cases.all()
    return cases.filter(created_by=user)


def case_get(*, user: User, case_id: int) -> Case:
    """Return one case the user may see; Case.DoesNotExist (a 404) for any other."""
    return case_list(user=user).get(pk=case_id)


def case_image_list(*, case: Case) -> QuerySet[Image]:
    """Return a case's images, each with its predictions newest first."""
    return (
        Image.objects.filter(case=case)
        .select_related("uploaded_by")
        .prefetch_related(
            Prefetch(
                "predictions",
                queryset=Prediction.objects.prefetch_related("reviews__reviewer").order_by(
                    "-created_at", "-id"
                ),
            )
        )
        .order_by("uploaded_at", "id")
    )


def case_image_get(*, user: User, case_id: int, image_id: int) -> Image:
    """Return one image of a case the user may see; Image.DoesNotExist otherwise."""
    case = case_get(user=user, case_id=case_id)
    return Image.objects.get(case=case, pk=image_id)


def case_scoring_in_progress(*, case: Case) -> bool:
    """Whether any image of the case is still waiting for, or being given, a score."""
    return Prediction.objects.filter(
        image__case=case,
        status__in=(PredictionStatus.PENDING, PredictionStatus.RUNNING),
    ).exists()
