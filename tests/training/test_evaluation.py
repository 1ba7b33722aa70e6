import itertools
import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from training.evaluation import (
    ThresholdChoice,
    _weighted_roc_auc,
    apply_temperature,
    binary_metrics,
    bootstrap_intervals,
    choose_threshold,
    evaluate_predictions,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
    sigmoid,
    source_balanced_roc_auc,
    threshold_for_sensitivity,
    within_source_gain,
)


def synthetic_logits(
    rng: np.random.Generator, n: int, prevalence: float = 0.3, separation: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Draw labels and logits from two overlapping normal distributions."""
    labels = (rng.random(n) < prevalence).astype(np.int64)
    logits = rng.normal(np.where(labels == 1, separation, -separation), 1.5)
    return labels, logits


def synthetic_scores(
    seed: int, n: int = 2000, prevalence: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    labels, logits = synthetic_logits(np.random.default_rng(seed), n, prevalence)
    return labels, sigmoid(logits)


def sensitivity_at(labels: np.ndarray, prob: np.ndarray, threshold: float) -> float:
    return float(np.mean(prob[labels == 1] >= threshold))


def ece_by_loop(labels: np.ndarray, prob: np.ndarray, n_bins: int) -> float:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for lower, upper in itertools.pairwise(edges):
        in_bin = (prob > lower) & (prob <= upper)
        if lower == 0.0:
            in_bin |= prob == 0.0
        if in_bin.any():
            gap = abs(labels[in_bin].mean() - prob[in_bin].mean())
            total += in_bin.sum() / prob.size * gap
    return total


def test_sigmoid_matches_the_logistic_function_without_overflowing():
    moderate = np.linspace(-20, 20, 81)
    np.testing.assert_allclose(sigmoid(moderate), 1.0 / (1.0 + np.exp(-moderate)), rtol=1e-12)
    with np.errstate(over="raise"):
        np.testing.assert_array_equal(sigmoid([-1000.0, 0.0, 1000.0]), [0.0, 0.5, 1.0])


def test_apply_temperature_divides_the_logits_before_the_sigmoid():
    logits = np.array([-4.0, -1.0, 0.0, 2.0, 6.0])
    np.testing.assert_allclose(apply_temperature(logits, 2.0), sigmoid(logits / 2.0))
    np.testing.assert_allclose(apply_temperature(logits, 1.0), sigmoid(logits))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_apply_temperature_rejects_temperatures_that_are_not_positive(temperature):
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature([0.5], temperature)


@pytest.mark.parametrize("true_temperature", [0.6, 2.5])
def test_it_recovers_a_known_temperature(true_temperature):
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 4.0, size=20_000)
    labels = (rng.random(logits.size) < sigmoid(logits / true_temperature)).astype(int)

    fitted = fit_temperature(logits, labels)

    assert fitted == pytest.approx(true_temperature, rel=0.10)


def test_it_keeps_already_calibrated_logits_near_unit_temperature():
    rng = np.random.default_rng(8)
    logits = rng.normal(0.0, 3.0, size=20_000)
    labels = (rng.random(logits.size) < sigmoid(logits)).astype(int)

    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.10)


def test_temperature_scaling_lowers_the_ece_of_overconfident_scores():
    rng = np.random.default_rng(9)
    calibrated_logits = rng.normal(0.0, 2.0, size=10_000)
    labels = (rng.random(calibrated_logits.size) < sigmoid(calibrated_logits)).astype(int)
    overconfident_logits = 3.0 * calibrated_logits

    temperature = fit_temperature(overconfident_logits, labels)
    before = expected_calibration_error(labels, sigmoid(overconfident_logits))
    after = expected_calibration_error(labels, apply_temperature(overconfident_logits, temperature))

    assert after < before / 3


def test_ece_matches_a_direct_loop_over_equal_width_bins():
    labels, prob = synthetic_scores(seed=1)
    # Scores on the bin edges must land in the same bin as the reference loop puts them.
    edges = np.linspace(0.0, 1.0, 16)
    prob = np.concatenate([prob, edges, edges])
    labels = np.concatenate([labels, np.zeros(16, dtype=int), np.ones(16, dtype=int)])

    for n_bins in (5, 10, 15):
        assert expected_calibration_error(labels, prob, n_bins) == pytest.approx(
            ece_by_loop(labels, prob, n_bins), abs=1e-12
        )


def test_reliability_curve_matches_sklearn_calibration_curve():
    labels, prob = synthetic_scores(seed=2, n=500)
    prob = np.concatenate([prob, np.linspace(0.0, 1.0, 11)])
    labels = np.concatenate([labels, np.ones(11, dtype=int)])
    observed, predicted = calibration_curve(labels, prob, n_bins=10, strategy="uniform")

    curve = reliability_curve(labels, prob, n_bins=10)

    filled = curve.count > 0
    np.testing.assert_allclose(curve.observed_frequency[filled], observed)
    np.testing.assert_allclose(curve.mean_predicted[filled], predicted)
    assert curve.count.sum() == prob.size
    np.testing.assert_allclose(curve.bin_edges, np.linspace(0.0, 1.0, 11))


def test_reliability_curve_leaves_empty_bins_as_none_in_its_dict():
    curve = reliability_curve([0, 1, 1], [0.05, 0.95, 0.9], n_bins=4)

    as_dict = curve.to_dict()

    assert as_dict["count"] == [1, 0, 0, 2]
    assert as_dict["mean_predicted"][1:3] == [None, None]
    json.dumps(as_dict, allow_nan=False)


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 0.99, 1.0])
def test_threshold_for_sensitivity_sits_exactly_on_the_boundary(target):
    labels, prob = synthetic_scores(seed=3, n=1000)
    prob = np.round(prob, 2)  # ties between malignant scores must not move the boundary

    threshold = threshold_for_sensitivity(labels, prob, target)

    assert sensitivity_at(labels, prob, threshold) >= target
    higher_scores = np.unique(prob[prob > threshold])
    if higher_scores.size:
        assert sensitivity_at(labels, prob, higher_scores[0]) < target


def test_threshold_for_sensitivity_is_not_fooled_by_floating_point_ratios():
    # 0.7 * 10 is 7.000000000000001 in floating point; seven of ten malignant cases still suffice.
    labels = np.array([1] * 10 + [0] * 5)
    prob = np.array(
        [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6]
    )

    assert threshold_for_sensitivity(labels, prob, 0.7) == 0.65


def test_threshold_for_sensitivity_needs_malignant_cases():
    with pytest.raises(ValueError, match="malignant"):
        threshold_for_sensitivity([0, 0, 0], [0.1, 0.2, 0.3], 0.9)


@pytest.mark.parametrize("target", [0.0, -0.1, 1.5])
def test_threshold_for_sensitivity_rejects_impossible_targets(target):
    with pytest.raises(ValueError, match="target sensitivity"):
        threshold_for_sensitivity([0, 1], [0.1, 0.9], target)


def test_chosen_threshold_never_exceeds_the_point_threshold():
    for seed in range(20):
        labels, prob = synthetic_scores(seed=seed, n=300)

        choice = choose_threshold(labels, prob, n_bootstrap=200, seed=seed)

        assert choice.threshold <= choice.point_threshold
        assert choice.point_threshold == threshold_for_sensitivity(labels, prob, 0.95)


def test_choose_threshold_is_deterministic_for_a_seed():
    labels, prob = synthetic_scores(seed=4, n=500)

    first = choose_threshold(labels, prob, n_bootstrap=500, seed=11)
    second = choose_threshold(labels, prob, n_bootstrap=500, seed=11)

    assert first == second


def test_the_margin_keeps_the_sensitivity_promise_on_new_data_more_often():
    rng = np.random.default_rng(5)
    target = 0.9
    chosen_met, point_met = 0, 0
    for simulation in range(200):
        validation_labels, validation_logits = synthetic_logits(rng, 400)
        test_labels, test_logits = synthetic_logits(rng, 3000)
        choice = choose_threshold(
            validation_labels,
            sigmoid(validation_logits),
            target_sensitivity=target,
            n_bootstrap=300,
            seed=simulation,
        )
        test_prob = sigmoid(test_logits)
        chosen_met += sensitivity_at(test_labels, test_prob, choice.threshold) >= target
        point_met += sensitivity_at(test_labels, test_prob, choice.point_threshold) >= target

    assert chosen_met > point_met
    assert chosen_met / 200 >= 0.85


def test_a_per_source_threshold_keeps_the_promise_in_the_source_whose_lesions_score_lower():
    rng = np.random.default_rng(9)
    # Source "hard" scores its malignant lesions lower than source "easy" does; pooled, the
    # easy source's many malignant images would let the threshold rise above the hard one's.
    labels = np.array([0] * 400 + [1] * 400 + [0] * 200 + [1] * 60)
    prob = np.concatenate(
        [
            rng.uniform(0.0, 0.5, 400),
            rng.uniform(0.6, 1.0, 400),
            rng.uniform(0.0, 0.3, 200),
            rng.uniform(0.2, 0.6, 60),
        ]
    )
    sources = np.array(["easy"] * 800 + ["hard"] * 260)

    pooled = choose_threshold(labels, prob, n_bootstrap=300, seed=0)
    per_source = choose_threshold(labels, prob, n_bootstrap=300, seed=0, groups=sources)

    hard = sources == "hard"
    assert sensitivity_at(labels[hard], prob[hard], pooled.threshold) < 0.95
    assert sensitivity_at(labels[hard], prob[hard], per_source.threshold) >= 0.95
    assert set(per_source.threshold_by_group) == {"easy", "hard"}
    assert per_source.threshold == min(pooled.threshold, *per_source.threshold_by_group.values())
    # A source with too few malignant images to set a threshold of its own sets none.
    few = choose_threshold(
        labels, prob, n_bootstrap=300, seed=0, groups=sources, min_group_positives=100
    )
    assert set(few.threshold_by_group) == {"easy"}


def test_threshold_choice_reports_validation_sensitivity_and_specificity():
    labels, prob = synthetic_scores(seed=6, n=800)

    choice = choose_threshold(labels, prob, target_sensitivity=0.9, n_bootstrap=300, seed=0)

    flagged = (prob >= choice.threshold).astype(int)
    assert choice.validation_sensitivity == pytest.approx(recall_score(labels, flagged))
    assert choice.validation_specificity == pytest.approx(
        recall_score(labels, flagged, pos_label=0)
    )
    assert choice.validation_sensitivity >= 0.9
    assert (choice.target_sensitivity, choice.n_bootstrap, choice.seed) == (0.9, 300, 0)
    assert "bootstrap" in choice.method


def test_threshold_choice_serialises_to_json():
    labels, prob = synthetic_scores(seed=7, n=300)
    choice = choose_threshold(labels, prob, n_bootstrap=100)

    restored = ThresholdChoice(**json.loads(json.dumps(choice.to_dict(), allow_nan=False)))

    assert restored == choice


def test_binary_metrics_agree_with_scikit_learn():
    labels, prob = synthetic_scores(seed=8)
    threshold = 0.4
    predicted = (prob >= threshold).astype(int)

    result = binary_metrics(labels, prob, threshold)

    assert result["n"] == labels.size
    assert result["n_positive"] == int(labels.sum())
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert result["precision"] == pytest.approx(precision_score(labels, predicted))
    assert result["recall"] == pytest.approx(recall_score(labels, predicted))
    assert result["sensitivity"] == result["recall"]
    assert result["f1"] == pytest.approx(f1_score(labels, predicted))
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, prob))
    assert result["pr_auc"] == pytest.approx(average_precision_score(labels, prob))
    assert result["log_loss"] == pytest.approx(log_loss(labels, prob))
    assert result["brier"] == pytest.approx(brier_score_loss(labels, prob))
    assert result["ece"] == pytest.approx(ece_by_loop(labels, prob, 15))
    assert result["confusion_matrix"] == confusion_matrix(labels, predicted).tolist()


def test_specificity_is_the_recall_of_the_benign_class():
    labels, prob = synthetic_scores(seed=9)
    predicted = (prob >= 0.5).astype(int)

    result = binary_metrics(labels, prob, 0.5)

    assert result["specificity"] == pytest.approx(recall_score(labels, predicted, pos_label=0))


def test_binary_metrics_include_scikit_learns_classification_report():
    labels, prob = synthetic_scores(seed=10)
    predicted = (prob >= 0.5).astype(int)
    expected = classification_report(
        labels, predicted, target_names=["benign", "malignant"], output_dict=True
    )

    result = binary_metrics(labels, prob, 0.5)

    report = result["classification_report"]
    for name in ("benign", "malignant", "macro avg", "weighted avg"):
        for key in ("precision", "recall", "f1-score", "support"):
            assert report[name][key] == pytest.approx(expected[name][key])
    assert report["accuracy"] == pytest.approx(expected["accuracy"])
    assert "malignant" in result["classification_report_text"]


def test_binary_metrics_are_plain_json():
    labels, prob = synthetic_scores(seed=11, n=300)

    result = binary_metrics(labels, prob, 0.5)

    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_a_single_class_group_gives_none_instead_of_crashing():
    benign_only = np.zeros(50, dtype=int)
    prob = np.random.default_rng(12).uniform(0.0, 0.6, size=50)

    result = binary_metrics(benign_only, prob, 0.5)

    assert result["roc_auc"] is None
    assert result["pr_auc"] is None
    assert result["recall"] is None
    assert result["sensitivity"] is None
    assert result["specificity"] == pytest.approx(np.mean(prob < 0.5))
    assert result["classification_report"]["malignant"]["recall"] is None
    json.dumps(result, allow_nan=False)


def test_a_threshold_that_flags_nobody_gives_none_precision():
    labels, prob = synthetic_scores(seed=13, n=200)

    result = binary_metrics(labels, prob, 1.01)

    assert result["precision"] is None
    assert result["recall"] == 0.0
    assert result["confusion_matrix"][0][1] == 0
    assert result["confusion_matrix"][1][1] == 0


def test_a_nan_threshold_is_rejected_rather_than_flagging_nobody():
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics([0, 1], [0.2, 0.8], float("nan"))


def test_bootstrap_intervals_contain_the_point_estimates():
    labels, prob = synthetic_scores(seed=14, n=1000)
    point = binary_metrics(labels, prob, 0.5)

    intervals = bootstrap_intervals(labels, prob, 0.5, n_bootstrap=500, seed=0)

    for name in ("sensitivity", "specificity", "roc_auc"):
        interval = intervals[name]
        assert interval is not None
        lower, upper = interval
        assert lower <= point[name] <= upper
        assert upper - lower < 0.2


def test_bootstrap_intervals_are_deterministic_for_a_seed():
    labels, prob = synthetic_scores(seed=15, n=400)

    first = bootstrap_intervals(labels, prob, 0.5, n_bootstrap=200, seed=3)
    second = bootstrap_intervals(labels, prob, 0.5, n_bootstrap=200, seed=3)

    assert first == second


def test_bootstrap_intervals_skip_metrics_that_a_single_class_leaves_undefined():
    benign_only = np.zeros(40, dtype=int)
    prob = np.random.default_rng(16).uniform(0.0, 0.7, size=40)

    intervals = bootstrap_intervals(benign_only, prob, 0.5, n_bootstrap=100)

    assert intervals["sensitivity"] is None
    assert intervals["roc_auc"] is None
    assert intervals["specificity"] is not None


def test_resampled_roc_auc_matches_scikit_learn_on_the_drawn_cases():
    rng = np.random.default_rng(17)
    labels, prob = synthetic_scores(seed=17, n=120)
    prob = np.round(prob, 1)  # ties must count half, as in scikit-learn
    draws = rng.integers(0, labels.size, size=(5, labels.size))
    counts = np.stack([np.bincount(row, minlength=labels.size) for row in draws]).astype(float)

    resampled = _weighted_roc_auc(labels, prob, counts)

    expected = [roc_auc_score(labels[row], prob[row]) for row in draws]
    np.testing.assert_allclose(resampled, expected, rtol=1e-12)


def test_it_reports_each_data_source_separately():
    labels, prob = synthetic_scores(seed=18, n=600)
    groups = np.where(np.arange(600) % 3 == 0, "isic-9class-180px", "ham10000").astype(object)
    # A data source with only benign cases must still be reported.
    groups[:20] = "benign-only-clinic"
    labels[:20] = 0

    report = evaluate_predictions(labels, prob, 0.5, groups=list(groups), n_bootstrap=100)

    assert list(report["by_group"]) == ["benign-only-clinic", "ham10000", "isic-9class-180px"]
    assert report["overall"]["n"] == 600
    for name, group_report in report["by_group"].items():
        in_group = groups == name
        expected = binary_metrics(labels[in_group], prob[in_group], 0.5)
        assert {key: group_report[key] for key in expected} == expected
        assert set(group_report["ci"]) == {"sensitivity", "specificity", "roc_auc"}
    assert report["by_group"]["benign-only-clinic"]["roc_auc"] is None
    assert report["by_group"]["benign-only-clinic"]["ci"]["roc_auc"] is None
    json.dumps(report, allow_nan=False)


def test_it_reports_no_groups_when_none_are_given():
    labels, prob = synthetic_scores(seed=19, n=200)

    report = evaluate_predictions(labels, prob, 0.5, n_bootstrap=50)

    assert report["by_group"] == {}
    assert report["overall"]["ci"]["roc_auc"] is not None


def test_it_rejects_groups_of_the_wrong_length():
    labels, prob = synthetic_scores(seed=20, n=10)

    with pytest.raises(ValueError, match="groups"):
        evaluate_predictions(labels, prob, 0.5, groups=["a"] * 9)


@pytest.mark.parametrize(
    ("labels", "prob"),
    [([0, 2], [0.1, 0.2]), ([0, 1], [0.1, 1.2]), ([0, 1], [0.1, float("nan")]), ([0, 1], [0.5])],
)
def test_it_rejects_invalid_labels_and_probabilities(labels, prob):
    with pytest.raises(ValueError, match=r"y_true|prob"):
        binary_metrics(labels, prob, 0.5)


def test_the_source_balanced_auc_averages_the_sources_that_hold_both_labels() -> None:
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 0])
    logits = np.array([0.1, 0.9, 0.4, 0.5, 0.7, 0.2, 0.3, 0.6])
    sources = np.array(["a", "a", "a", "a", "b", "b", "b", "c"])

    expected = np.mean(
        [roc_auc_score(labels[:4], logits[:4]), roc_auc_score(labels[4:7], logits[4:7])]
    )
    assert source_balanced_roc_auc(labels, logits, sources) == pytest.approx(expected)
    assert source_balanced_roc_auc(labels, logits, np.full(8, "x")) == pytest.approx(
        roc_auc_score(labels, logits)
    )
    with pytest.raises(ValueError, match="no source holds both labels"):
        source_balanced_roc_auc(labels, logits, np.arange(8).astype(str))


def _two_sources(seed: int, noise: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Labels, sources and two scores of the same 1,200 images, each score the label plus
    Gaussian noise of its own width."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 1200)
    sources = np.where(rng.random(1200) < 0.5, "clinic", "archive")
    first, second = (labels + rng.normal(0, width, 1200) for width in noise)
    return labels, sources, first, second


def test_a_clearly_better_score_is_kept_and_a_copy_of_the_same_is_not() -> None:
    labels, sources, worse, better = _two_sources(0, (2.0, 0.7))
    gain = within_source_gain(labels, worse, better, sources, min_per_label=20)
    assert gain.gain > 0.1
    assert 0 < gain.standard_error < gain.gain
    assert gain.kept
    same = within_source_gain(labels, worse, worse.copy(), sources, min_per_label=20)
    assert same.gain == 0.0
    assert not same.kept


def test_the_gain_is_measured_within_sources_not_between_them() -> None:
    labels, sources, score, _ = _two_sources(1, (1.0, 1.0))
    # Ranking every "clinic" image above every "archive" one changes the pooled ROC AUC (the
    # sources differ in malignant share here) but no ranking inside either source.
    labels[sources == "clinic"] = np.where(np.arange((sources == "clinic").sum()) % 4 == 0, 0, 1)
    shifted = score + np.where(sources == "clinic", 10.0, 0.0)
    gain = within_source_gain(labels, score, shifted, sources, min_per_label=20)
    assert gain.gain == pytest.approx(0.0, abs=1e-12)
    assert roc_auc_score(labels, shifted) != pytest.approx(roc_auc_score(labels, score))


def test_a_gain_smaller_than_its_noise_is_not_kept() -> None:
    labels, sources, first, second = _two_sources(2, (1.0, 0.98))
    gain = within_source_gain(labels, first, second, sources, min_per_label=20)
    assert abs(gain.gain) < gain.standard_error * 3
    assert gain.kept is (gain.gain > gain.standard_error)


def test_the_shortcut_check_finds_a_source_scored_apart_within_one_kind_of_lesion() -> None:
    from training.pipeline import Scores, source_shortcut_check

    rng = np.random.default_rng(5)
    sources = np.repeat(["archive", "clinic", "screening"], 40)
    labels = np.tile([0, 1], 60)
    diagnosis = np.where(labels == 1, "melanoma", "naevus")
    logits = rng.normal(0, 1, 120) + 2 * labels
    # The archive's melanomas score higher than anyone else's: a trace of the source.
    logits[(sources == "archive") & (labels == 1)] += 3.0
    check = source_shortcut_check({"test": Scores(logits, labels, sources)}, {"test": diagnosis})[
        "by_diagnosis"
    ]

    assert check["diagnosis melanoma: archive vs clinic"]["source_auc"] < 0.1
    assert check["every malignant: archive vs screening"]["source_auc"] < 0.1
    assert 0.25 < check["diagnosis melanoma: clinic vs screening"]["source_auc"] < 0.75
    assert 0.25 < check["diagnosis naevus: archive vs clinic"]["source_auc"] < 0.75
    assert check["diagnosis naevus: archive vs clinic"]["n_by_source"] == {
        "archive": 20,
        "clinic": 20,
    }
