import pytest

from webapp.reviews.risk import HIGH_FROM_ODDS_RATIO, VERY_HIGH_FROM_ODDS_RATIO, RiskBand, risk_band


def probability_at(odds_ratio: float, threshold: float) -> float:
    """The probability whose odds are `odds_ratio` times the threshold's."""
    odds = odds_ratio * threshold / (1 - threshold)
    return odds / (1 + odds)


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.8])
def test_the_bands_start_at_the_same_odds_ratio_whatever_the_threshold(threshold):
    def band(ratio: float) -> RiskBand | None:
        return risk_band(probability=probability_at(ratio, threshold), threshold=threshold)

    assert band(1.0) == RiskBand.BORDERLINE
    assert band(HIGH_FROM_ODDS_RATIO * 0.99) == RiskBand.BORDERLINE
    assert band(HIGH_FROM_ODDS_RATIO * 1.01) == RiskBand.HIGH
    assert band(VERY_HIGH_FROM_ODDS_RATIO * 0.99) == RiskBand.HIGH
    assert band(VERY_HIGH_FROM_ODDS_RATIO * 1.01) == RiskBand.VERY_HIGH


def test_a_score_below_its_threshold_or_without_one_has_no_band():
    assert risk_band(probability=0.4, threshold=0.5) is None
    assert risk_band(probability=None, threshold=0.5) is None
    assert risk_band(probability=0.9, threshold=None) is None


def test_certainty_is_very_high():
    assert risk_band(probability=1.0, threshold=0.5) == RiskBand.VERY_HIGH
    assert risk_band(probability=0.3, threshold=0.0) == RiskBand.VERY_HIGH
    assert RiskBand.VERY_HIGH.label == "Very high"
