"""How the input size an artifact is served at is chosen from the within-source validation
gain of each size."""

from __future__ import annotations

import pytest

from training.cli import build_parser
from training.evaluation import WithinSourceGain
from training.pipeline import choose_serving_size, serving_size_candidates


def test_candidates_step_by_the_total_stride_up_to_a_quarter_larger() -> None:
    assert serving_size_candidates(256) == [256, 288, 320]
    assert serving_size_candidates(224) == [224, 256]
    assert serving_size_candidates(128) == [128, 160]
    assert serving_size_candidates(32) == [32]


def _gain(before: float, after: float, standard_error: float = 0.01) -> WithinSourceGain:
    return WithinSourceGain(before=before, after=after, standard_error=standard_error)


def test_a_larger_size_is_kept_only_for_a_gain_above_its_standard_error() -> None:
    gains = {256: _gain(0.85, 0.85), 288: _gain(0.85, 0.865), 320: _gain(0.85, 0.855)}
    assert choose_serving_size(gains, 256) == 288
    gains[288] = _gain(0.85, 0.865, standard_error=0.02)
    assert choose_serving_size(gains, 256) == 256


def test_the_best_kept_size_wins_and_ties_go_to_the_smaller_size() -> None:
    gains = {256: _gain(0.80, 0.80), 288: _gain(0.80, 0.85), 320: _gain(0.80, 0.87)}
    assert choose_serving_size(gains, 256) == 320
    gains[320] = _gain(0.80, 0.85)
    assert choose_serving_size(gains, 256) == 288


def test_the_training_size_wins_when_larger_sizes_are_worse() -> None:
    gains = {256: _gain(0.86, 0.86), 288: _gain(0.86, 0.84), 320: _gain(0.86, 0.83)}
    assert choose_serving_size(gains, 256) == 256


@pytest.mark.parametrize("value", ["auto", "train", "288"])
def test_the_command_line_takes_auto_train_or_a_size(value: str) -> None:
    args = build_parser().parse_args(["finalize", "--serving-size", value])
    assert args.serving_size == value


@pytest.mark.parametrize("value", ["big", "0", "-32", "8"])
def test_the_command_line_refuses_other_serving_sizes(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finalize", "--serving-size", value])
    assert "--serving-size" in capsys.readouterr().err
