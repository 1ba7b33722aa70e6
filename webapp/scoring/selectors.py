from __future__ import annotations

from webapp.accounts.models import User
from webapp.cases.selectors import case_list
from webapp.scoring.models import Prediction


def prediction_get(*, user: User, prediction_id: int) -> Prediction:
    """Return a prediction of a case the user may see; Prediction.DoesNotExist otherwise."""
    return Prediction.objects.select_related("image__case").get(
        pk=prediction_id, image__case__in=case_list(user=user)
    )
