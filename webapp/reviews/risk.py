"""How far above the model's threshold a flagged score lies, in three bands for the queue."""

from __future__ import annotations

import enum
import math


class RiskBand(enum.StrEnum):
    BORDERLINE = "borderline"
    HIGH = "high"
    VERY_HIGH = "very_high"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


# The bands are read on the odds scale (the logit's, exponentiated): how many times the odds
# of malignancy at the threshold a score's odds are. The same step in probability means much
# more near 0 or 1 than near the middle, and a ratio of probabilities would squeeze every band
# together under a high threshold; an odds ratio reads alike whatever the threshold.
HIGH_FROM_ODDS_RATIO = 2.0
VERY_HIGH_FROM_ODDS_RATIO = 10.0


def risk_band(*, probability: float | None, threshold: float | None) -> RiskBand | None:
    """The band of a score at or above its threshold; None for one below it or without either.

    Borderline below HIGH_FROM_ODDS_RATIO times the threshold's odds, high from there, very
    high from VERY_HIGH_FROM_ODDS_RATIO times them.
    """
    if probability is None or threshold is None or probability < threshold:
        return None
    if probability >= 1 or threshold <= 0:
        # Odds without end: nothing is further above the threshold.
        return RiskBand.VERY_HIGH
    ratio = math.exp(_logit(probability) - _logit(threshold))
    if ratio >= VERY_HIGH_FROM_ODDS_RATIO:
        return RiskBand.VERY_HIGH
    if ratio >= HIGH_FROM_ODDS_RATIO:
        return RiskBand.HIGH
    return RiskBand.BORDERLINE


def _logit(probability: float) -> float:
    return math.log(probability / (1 - probability))
