"""How the input size an artifact is served at is chosen from validation ROC AUC, and the rule
every serving choice is kept by."""

from __future__ import annotations

import pytest

from training.cli import build_parser
from training.pipeline import (
    SERVING_SIZE_MIN_GAIN,
    choose_serving_size,
    keeps_change,
    serving_size_candidates,
)


def test_candidates_step_by_the_total_stride_up_to_a_quarter_larger() -> None:
    assert serving_size_candidates(256) == [256, 288, 320]
    assert serving_size_candidates(224) == [224, 256]
    assert serving_size_candidates(128) == [128, 160]
    assert serving_size_candidates(32) == [32]


def test_a_larger_size_is_kept_for_a_gain_of_at_least_the_minimum() -> None:
    aucs = {256: 0.860, 288: 0.860 + SERVING_SIZE_MIN_GAIN, 320: 0.850}
    assert choose_serving_size(aucs, 256) == 288


def test_a_gain_below_the_minimum_keeps_the_training_size() -> None:
    aucs = {256: 0.860, 288: 0.860 + SERVING_SIZE_MIN_GAIN / 2, 320: 0.855}
    assert choose_serving_size(aucs, 256) == 256


def test_the_best_size_wins_and_ties_go_to_the_smaller_size() -> None:
    assert choose_serving_size({256: 0.80, 288: 0.85, 320: 0.87}, 256) == 320
    assert choose_serving_size({256: 0.80, 288: 0.85, 320: 0.85}, 256) == 288


def test_the_training_size_wins_when_larger_sizes_are_worse() -> None:
    assert choose_serving_size({256: 0.86, 288: 0.84, 320: 0.83}, 256) == 256


def test_a_size_that_ranks_worse_within_sources_is_not_a_candidate() -> None:
    overall = {256: 0.860, 288: 0.880, 320: 0.875}
    # 288 gains overall only by ranking one source's lesions above the other's.
    within = {256: 0.850, 288: 0.849, 320: 0.851}
    assert choose_serving_size(overall, 256, within_source_auc_by_size=within) == 320
    assert choose_serving_size(overall, 256) == 288


def test_the_training_size_stays_when_every_larger_size_loses_within_sources() -> None:
    overall = {256: 0.860, 288: 0.880, 320: 0.875}
    within = {256: 0.850, 288: 0.840, 320: 0.845}
    assert choose_serving_size(overall, 256, within_source_auc_by_size=within) == 256


@pytest.mark.parametrize(
    ("overall_gain", "within_source_gain", "kept"),
    [
        (0.005, 0.0, True),
        (0.010, 0.004, True),
        (0.004, 0.004, False),
        (0.020, -0.001, False),
        (-0.001, 0.010, False),
    ],
)
def test_a_change_is_kept_for_the_minimum_gain_overall_and_no_loss_within_sources(
    overall_gain: float, within_source_gain: float, kept: bool
) -> None:
    assert keeps_change(overall_gain, within_source_gain, min_gain=0.005) is kept


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
