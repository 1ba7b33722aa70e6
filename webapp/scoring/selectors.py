from __future__ import annotations

from webapp.accounts.models import User
from webapp.cases.selectors import case_list
from webapp.scoring.models import Prediction


def prediction_get(*, user: User, prediction_id: int) -> Prediction:
    """Return a prediction of a case the user may see; Prediction.DoesNotExist otherwise."""
    return Prediction.objects.select_related("image__case").get(
        pk=prediction_id, image__case__in=case_list(user=user)
    )


def prediction_heatmap_get(
    *, user: User, prediction_id: int, case_id: int | None = None
) -> Prediction:
    """Return a prediction that has a heatmap, of a case the user may see (and of `case_id`
    when given); Prediction.DoesNotExist otherwise."""
    predictions = (
        Prediction.objects.select_related("image__case")
        .filter(image__case__in=case_list(user=user))
        .exclude(heatmap="")
    )
    if case_id is not None:
        predictions = predictions.filter(image__case_id=case_id)
    return predictions.get(pk=prediction_id)
