"""Calibration, operating-threshold choice and metrics for the benign/malignant classifier.

Conventions used throughout: label 1 is malignant (the positive class) and 0 is benign;
``prob`` is the predicted probability of malignancy and a case is flagged malignant when
``prob >= threshold``. Every function is pure numpy/scipy/scikit-learn so that evaluation can
run without TensorFlow, and all randomness comes from a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from sklearn import metrics

BENIGN = 0
MALIGNANT = 1
CLASS_LABELS = (BENIGN, MALIGNANT)
TARGET_NAMES = ("benign", "malignant")

# Wide enough for any realistic network (T < 0.05 or T > 20 means something else is broken),
# and bounded so that perfectly separable validation data cannot drive T to zero.
TEMPERATURE_SEARCH_RANGE = (0.05, 20.0)

# Caps each (resamples x cases) matrix built per bootstrap chunk at about 8 MB of float64,
# which keeps evaluation light enough to run beside a training job.
_BOOTSTRAP_CHUNK_ELEMENTS = 1_000_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin calibration statistics over equal-width probability bins.

    ``mean_predicted`` and ``observed_frequency`` are NaN for empty bins; ``count`` is the
    number of samples whose predicted probability fell into each bin.
    """

    bin_edges: FloatArray
    mean_predicted: FloatArray
    observed_frequency: FloatArray
    count: IntArray

    def to_dict(self) -> dict[str, list[float | None] | list[int] | list[float]]:
        """Return JSON-serialisable lists, with None for the statistics of empty bins."""
        return {
            "bin_edges": [float(edge) for edge in self.bin_edges],
            "mean_predicted": _nan_to_none(self.mean_predicted),
            "observed_frequency": _nan_to_none(self.observed_frequency),
            "count": [int(count) for count in self.count],
        }


@dataclass(frozen=True)
class ThresholdChoice:
    """An operating threshold chosen to keep a sensitivity promise on unseen data."""

    threshold: float
    target_sensitivity: float
    point_threshold: float
    method: str
    validation_sensitivity: float
    validation_specificity: float | None
    n_bootstrap: int
    seed: int
    # The threshold each source with enough malignant validation images would need on its own;
    # the chosen one is at most the lowest of them (empty when no groups were given).
    threshold_by_group: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def sigmoid(logits: npt.ArrayLike) -> FloatArray:
    """Return the logistic function of ``logits``, stable for large magnitudes."""
    return np.asarray(special.expit(np.asarray(logits, dtype=np.float64)), dtype=np.float64)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")


def apply_temperature(logits: npt.ArrayLike, temperature: float) -> FloatArray:
    """Return calibrated probabilities ``sigmoid(logits / temperature)``."""
    _check_temperature(temperature)
    return sigmoid(np.asarray(logits, dtype=np.float64) / temperature)


def fit_temperature(logits: npt.ArrayLike, y_true: npt.ArrayLike) -> float:
    """Fit the temperature T > 0 that minimises the binary NLL of ``sigmoid(logits / T)``.

    This is temperature scaling (Guo et al., 2017) for a single-logit binary classifier. Fit it
    on validation logits, never on the training set. The search runs over log T inside
    ``TEMPERATURE_SEARCH_RANGE``; already calibrated logits give a temperature close to 1.
    """
    labels = _labels(y_true)
    scores = _logits(logits, len(labels))

    def mean_nll(log_temperature: float) -> float:
        scaled = scores / math.exp(log_temperature)
        # log(1 + e^s) - y*s is the binary NLL written so that it never overflows.
        return float(np.mean(np.logaddexp(0.0, scaled) - labels * scaled))

    # The NLL is convex in 1/T, hence unimodal in log T, which bounded Brent search handles.
    lowest, highest = TEMPERATURE_SEARCH_RANGE
    result = optimize.minimize_scalar(
        mean_nll,
        bounds=(math.log(lowest), math.log(highest)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    if not result.success:
        raise RuntimeError(f"temperature fit did not converge: {result.message}")
    return float(math.exp(result.x))


def reliability_curve(
    y_true: npt.ArrayLike, prob: npt.ArrayLike, n_bins: int = 15
) -> ReliabilityCurve:
    """Bin predictions into equal-width bins over [0, 1] and summarise each bin.

    Bins are closed on the right (the first also on the left), the same rule as
    ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    labels = _labels(y_true)
    probabilities = _probabilities(prob, len(labels))
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    bin_edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_index = np.searchsorted(bin_edges[1:-1], probabilities, side="left")
    count = np.bincount(bin_index, minlength=n_bins).astype(np.int64)
    predicted_sum = np.bincount(bin_index, weights=probabilities, minlength=n_bins)
    positive_sum = np.bincount(bin_index, weights=labels.astype(np.float64), minlength=n_bins)
    return ReliabilityCurve(
        bin_edges=bin_edges,
        mean_predicted=_divide_or_nan(predicted_sum, count),
        observed_frequency=_divide_or_nan(positive_sum, count),
        count=count,
    )


def expected_calibration_error(
    y_true: npt.ArrayLike, prob: npt.ArrayLike, n_bins: int = 15
) -> float:
    """Return the ECE: sum over bins of (n_b / N) * |observed frequency - mean predicted|."""
    curve = reliability_curve(y_true, prob, n_bins)
    filled = curve.count > 0
    weights = curve.count[filled] / curve.count.sum()
    gaps = np.abs(curve.observed_frequency[filled] - curve.mean_predicted[filled])
    return float(np.sum(weights * gaps))


def threshold_for_sensitivity(y_true: npt.ArrayLike, prob: npt.ArrayLike, target: float) -> float:
    """Return the highest threshold t whose sensitivity (``prob >= t`` on malignant) >= target."""
    labels = _labels(y_true)
    probabilities = _probabilities(prob, len(labels))
    _check_target_sensitivity(target)
    positive_scores = probabilities[labels == MALIGNANT]
    if positive_scores.size == 0:
        raise ValueError("sensitivity is undefined without malignant cases")
    rank = _positives_needed(positive_scores.size, target)
    # The rank-th highest malignant score: any higher threshold loses at least one of them.
    return float(np.sort(positive_scores)[positive_scores.size - rank])


def choose_threshold(
    y_true: npt.ArrayLike,
    prob: npt.ArrayLike,
    *,
    target_sensitivity: float = 0.95,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: npt.ArrayLike | None = None,
    min_group_positives: int = 50,
) -> ThresholdChoice:
    """Choose an operating threshold whose sensitivity promise should hold on new data.

    The threshold that exactly reaches ``target_sensitivity`` on the validation set misses the
    target on new data about half of the time. Instead, the validation set is resampled
    ``n_bootstrap`` times (stratified by class), ``threshold_for_sensitivity`` is computed on
    each resample, and the lower ``1 - confidence`` quantile of those thresholds is used (a
    one-sided bound, e.g. the 5th percentile for ``confidence=0.95``). The result is never
    above the point threshold. Deterministic for a given ``seed``.

    With ``groups`` (each image's source), the promise is kept per source as well: each source
    with at least ``min_group_positives`` malignant images gets its own threshold by the same
    rule, and the lowest of them is used where it is lower than the pooled one, so that one
    source's easy lesions cannot carry another's misses.
    """
    labels = _labels(y_true)
    probabilities = _probabilities(prob, len(labels))
    _check_target_sensitivity(target_sensitivity)
    _check_confidence(confidence)
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    point_threshold = threshold_for_sensitivity(labels, probabilities, target_sensitivity)
    rng = np.random.default_rng(seed)
    pooled = _margin_threshold(
        probabilities[labels == MALIGNANT], target_sensitivity, n_bootstrap, confidence, rng
    )
    threshold = min(pooled, point_threshold)
    by_group: dict[str, float] = {}
    if groups is not None:
        group_array = np.asarray(groups)
        for group in sorted(set(group_array.tolist())):
            positives = probabilities[(group_array == group) & (labels == MALIGNANT)]
            if positives.size >= min_group_positives:
                by_group[group] = min(
                    _margin_threshold(positives, target_sensitivity, n_bootstrap, confidence, rng),
                    threshold_for_sensitivity(
                        np.ones(positives.size, dtype=int), positives, target_sensitivity
                    ),
                )
        threshold = min([threshold, *by_group.values()])
    confusion = _confusion(labels, probabilities >= threshold)
    per_source = (
        f"; the lowest of that and each source's own (sources with >= {min_group_positives} "
        "malignant images)"
        if groups is not None
        else ""
    )
    return ThresholdChoice(
        threshold=threshold,
        target_sensitivity=float(target_sensitivity),
        point_threshold=point_threshold,
        method=(
            f"stratified bootstrap ({n_bootstrap} resamples): lower {1.0 - confidence:.1%} "
            f"quantile of the per-resample thresholds reaching sensitivity "
            f"{target_sensitivity:g}, capped at the point threshold{per_source}"
        ),
        validation_sensitivity=float(confusion.true_positive / int(np.sum(labels == MALIGNANT))),
        validation_specificity=_ratio(
            confusion.true_negative, confusion.true_negative + confusion.false_positive
        ),
        n_bootstrap=int(n_bootstrap),
        seed=int(seed),
        threshold_by_group=by_group,
    )


def _margin_threshold(
    positive_scores: FloatArray,
    target: float,
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
) -> float:
    """The lower ``1 - confidence`` quantile of the thresholds reaching ``target`` sensitivity
    on bootstrap resamples of the malignant scores."""
    # Only malignant scores move the sensitivity threshold, so a class-stratified resample
    # reduces to resampling the malignant scores with their count held fixed.
    n_positive = positive_scores.size
    order_index = n_positive - _positives_needed(n_positive, target)
    resampled_thresholds = np.empty(n_bootstrap, dtype=np.float64)
    for rows in _chunks(n_bootstrap, n_positive):
        draws = positive_scores[
            rng.integers(0, n_positive, size=(rows.stop - rows.start, n_positive))
        ]
        resampled_thresholds[rows] = np.partition(draws, order_index, axis=1)[:, order_index]
    # "lower" keeps the threshold on an observed score rather than between two of them.
    return float(np.quantile(resampled_thresholds, 1.0 - confidence, method="lower"))


def binary_metrics(y_true: npt.ArrayLike, prob: npt.ArrayLike, threshold: float) -> dict[str, Any]:
    """Return JSON-serialisable metrics at ``threshold``; undefined values are None.

    Keys: threshold, n, n_positive, n_negative, accuracy, precision, recall, sensitivity
    (same as recall), specificity, flagged (share of images flagged), f1, roc_auc, pr_auc
    (average precision), log_loss, brier, ece, confusion_matrix as ``[[tn, fp], [fn, tp]]``,
    classification_report (scikit-learn's dict form) and classification_report_text. Metrics
    that need both classes (roc_auc) or a non-zero denominator (precision with no flagged case,
    ...) are None instead of NaN, so a data source with a single class can still be reported.
    """
    labels = _labels(y_true)
    probabilities = _probabilities(prob, len(labels))
    _check_threshold(threshold)
    predicted = (probabilities >= threshold).astype(np.int64)
    confusion = _confusion(labels, predicted.astype(bool))
    tn, fp, fn, tp = (
        confusion.true_negative,
        confusion.false_positive,
        confusion.false_negative,
        confusion.true_positive,
    )
    n_positive = tp + fn
    n_negative = tn + fp
    both_classes = n_positive > 0 and n_negative > 0
    recall = _ratio(tp, n_positive)
    report_options: dict[str, Any] = {
        "labels": list(CLASS_LABELS),
        "target_names": list(TARGET_NAMES),
        "zero_division": np.nan,
    }
    report = metrics.classification_report(labels, predicted, output_dict=True, **report_options)
    return {
        "threshold": float(threshold),
        "n": int(labels.size),
        "n_positive": n_positive,
        "n_negative": n_negative,
        "accuracy": _ratio(tp + tn, labels.size),
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "sensitivity": recall,
        "specificity": _ratio(tn, n_negative),
        # The share a reviewer queue would receive: what decides whether the flag triages.
        "flagged": _ratio(tp + fp, labels.size),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": float(metrics.roc_auc_score(labels, probabilities)) if both_classes else None,
        "pr_auc": (
            float(metrics.average_precision_score(labels, probabilities))
            if n_positive > 0
            else None
        ),
        "log_loss": float(metrics.log_loss(labels, probabilities, labels=list(CLASS_LABELS))),
        "brier": float(np.mean((probabilities - labels) ** 2)),
        "ece": expected_calibration_error(labels, probabilities),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "classification_report": _json_ready(report),
        "classification_report_text": metrics.classification_report(
            labels, predicted, digits=3, **report_options
        ),
    }


def bootstrap_intervals(
    y_true: npt.ArrayLike,
    prob: npt.ArrayLike,
    threshold: float,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """Return percentile bootstrap intervals for sensitivity, specificity and roc_auc.

    Cases are resampled with replacement. Resamples where a metric is undefined (no malignant
    case for sensitivity, no benign case for specificity, a single class for roc_auc) are
    skipped for that metric; a metric undefined in every resample gets None.
    """
    labels = _labels(y_true)
    probabilities = _probabilities(prob, len(labels))
    _check_threshold(threshold)
    _check_confidence(confidence)
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    n_samples = labels.size
    is_positive = (labels == MALIGNANT).astype(np.float64)
    is_negative = 1.0 - is_positive
    flagged = (probabilities >= threshold).astype(np.float64)

    rng = np.random.default_rng(seed)
    uniform = np.full(n_samples, 1.0 / n_samples)
    resampled: dict[str, list[FloatArray]] = {"sensitivity": [], "specificity": [], "roc_auc": []}
    for rows in _chunks(n_bootstrap, n_samples):
        # A resample is the original cases weighted by how often each one was drawn.
        counts = rng.multinomial(n_samples, uniform, size=rows.stop - rows.start).astype(np.float64)
        positives = counts @ is_positive
        negatives = counts @ is_negative
        resampled["sensitivity"].append(_divide_or_nan(counts @ (is_positive * flagged), positives))
        resampled["specificity"].append(
            _divide_or_nan(counts @ (is_negative * (1.0 - flagged)), negatives)
        )
        resampled["roc_auc"].append(_weighted_roc_auc(labels, probabilities, counts))

    tail = (1.0 - confidence) / 2.0
    intervals: dict[str, tuple[float, float] | None] = {}
    for name, chunks in resampled.items():
        values = np.concatenate(chunks)
        values = values[np.isfinite(values)]
        if values.size == 0:
            intervals[name] = None
            continue
        lower, upper = np.quantile(values, [tail, 1.0 - tail])
        intervals[name] = (float(lower), float(upper))
    return intervals


def evaluate_predictions(
    y_true: npt.ArrayLike,
    prob: npt.ArrayLike,
    threshold: float,
    *,
    groups: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Return metrics with bootstrap intervals overall and per group (e.g. per data source).

    The result is ``{"overall": {...}, "by_group": {group: {...}}}`` where each entry is
    ``binary_metrics(...)`` plus ``"ci"`` from ``bootstrap_intervals(...)``. ``by_group`` is
    empty when ``groups`` is None and is ordered by group name otherwise.
    """
    labels = _labels(y_true)
    probabilities = _probabilities(prob, len(labels))

    def evaluate(mask: npt.NDArray[np.bool_] | slice) -> dict[str, Any]:
        report = binary_metrics(labels[mask], probabilities[mask], threshold)
        report["ci"] = bootstrap_intervals(
            labels[mask], probabilities[mask], threshold, n_bootstrap=n_bootstrap, seed=seed
        )
        return report

    by_group: dict[str, dict[str, Any]] = {}
    if groups is not None:
        group_names = np.asarray([str(group) for group in groups])
        if group_names.shape != labels.shape:
            raise ValueError(
                f"groups has {group_names.size} entries but there are {labels.size} predictions"
            )
        for group in sorted(set(group_names.tolist())):
            by_group[group] = evaluate(group_names == group)
    return {"overall": evaluate(slice(None)), "by_group": by_group}


@dataclass(frozen=True)
class _Confusion:
    true_negative: int
    false_positive: int
    false_negative: int
    true_positive: int


# A source counts towards a within-source figure used for choices only with at least this many
# validation images of each label: fewer make its ROC AUC noise.
MIN_PER_LABEL_WITHIN = 20


def binary_cross_entropy(labels: npt.ArrayLike, logits: npt.ArrayLike) -> float:
    """Mean log loss of logits, computed stably."""
    y, z = np.asarray(labels, dtype=np.float64), np.asarray(logits, dtype=np.float64)
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def source_balanced_roc_auc(
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    sources: npt.ArrayLike,
    *,
    min_per_label: int = 1,
) -> float:
    """The mean of the ROC AUCs within each source that holds at least `min_per_label` images
    of each label: how well a score ranks lesions of one clinic, blind to how it ranks one
    source's lesions against another's. With one source it is the plain ROC AUC."""
    labels, values, groups = np.asarray(y_true), np.asarray(scores), np.asarray(sources)
    per_source = [
        metrics.roc_auc_score(labels[groups == source], values[groups == source])
        for source in sorted(set(groups.tolist()))
        if min(np.sum(labels[groups == source] == label) for label in (0, 1))
        >= max(1, min_per_label)
    ]
    if not per_source:
        raise ValueError("no source holds both labels")
    return float(np.mean(per_source))


@dataclass(frozen=True)
class WithinSourceGain:
    """How a change moved the mean within-source validation ROC AUC, and how sure that is."""

    before: float
    after: float
    # Of the paired difference, over bootstrap resamples of the validation images.
    standard_error: float

    @property
    def gain(self) -> float:
        return self.after - self.before

    @property
    def kept(self) -> bool:
        """A change is kept only for a gain larger than its bootstrap standard error: smaller
        ones are as likely the validation images' noise, which does not transfer."""
        return self.gain > self.standard_error

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "gain": self.gain}


def within_source_gain(
    y_true: npt.ArrayLike,
    before: npt.ArrayLike,
    after: npt.ArrayLike,
    sources: npt.ArrayLike,
    *,
    seed: int = 0,
    resamples: int = 200,
    min_per_label: int = MIN_PER_LABEL_WITHIN,
) -> WithinSourceGain:
    """The within-source ROC AUC (`source_balanced_roc_auc`) of two scores of the same images,
    with the standard error of their difference: images are resampled within each (source,
    label) group and both scores are measured on the same resample."""
    labels, first, second = _labels(y_true), np.asarray(before), np.asarray(after)
    groups = np.asarray(sources)
    counted = [
        source
        for source in sorted(set(groups.tolist()))
        if min(np.sum(labels[groups == source] == label) for label in (0, 1))
        >= max(1, min_per_label)
    ]
    if not counted:
        # Too few images for any source to count (a smoke run): every source with both labels.
        return within_source_gain(labels, first, second, groups, seed=seed, min_per_label=1)
    members = [
        np.flatnonzero((groups == source) & (labels == label))
        for source in counted
        for label in (0, 1)
    ]

    def within(indices: np.ndarray, scores: np.ndarray) -> float:
        chosen = groups[indices]
        return float(
            np.mean(
                [
                    metrics.roc_auc_score(
                        labels[indices][chosen == source], scores[indices][chosen == source]
                    )
                    for source in counted
                ]
            )
        )

    everything = np.concatenate(members)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        resample = np.concatenate([rng.choice(group, size=group.size) for group in members])
        differences.append(within(resample, second) - within(resample, first))
    return WithinSourceGain(
        before=within(everything, first),
        after=within(everything, second),
        standard_error=float(np.std(differences, ddof=1)),
    )


def _confusion(labels: IntArray, flagged: npt.NDArray[np.bool_]) -> _Confusion:
    """Count the four confusion-matrix cells as plain ints."""
    malignant = labels == MALIGNANT
    return _Confusion(
        true_negative=int(np.sum(~malignant & ~flagged)),
        false_positive=int(np.sum(~malignant & flagged)),
        false_negative=int(np.sum(malignant & ~flagged)),
        true_positive=int(np.sum(malignant & flagged)),
    )


def _weighted_roc_auc(labels: IntArray, prob: FloatArray, counts: FloatArray) -> FloatArray:
    """Return the ROC AUC of each resample given as per-case draw counts (one row each).

    AUC is the probability that a malignant case outscores a benign one, ties counting half.
    Sorting once and summing benign weight below each score avoids re-sorting per resample.
    """
    order = np.argsort(prob, kind="stable")
    sorted_prob = prob[order]
    sorted_malignant = labels[order] == MALIGNANT
    weights = counts[:, order]
    starts_new_score = np.r_[True, sorted_prob[1:] != sorted_prob[:-1]]
    group_starts = np.flatnonzero(starts_new_score)
    group_of_case = np.cumsum(starts_new_score) - 1

    benign_per_score = np.add.reduceat(weights * ~sorted_malignant, group_starts, axis=1)
    benign_below = np.cumsum(benign_per_score, axis=1) - benign_per_score
    benign_beaten = benign_below + 0.5 * benign_per_score
    malignant_weights = weights * sorted_malignant
    concordant = np.sum(malignant_weights * benign_beaten[:, group_of_case], axis=1)
    pairs = malignant_weights.sum(axis=1) * benign_per_score.sum(axis=1)
    return _divide_or_nan(concordant, pairs)


def _chunks(n_rows: int, row_length: int) -> Iterator[slice]:
    """Split ``n_rows`` bootstrap rows into slices that keep each chunk's matrix small."""
    rows_per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // max(row_length, 1))
    for start in range(0, n_rows, rows_per_chunk):
        yield slice(start, min(start + rows_per_chunk, n_rows))


def _positives_needed(n_positive: int, target: float) -> int:
    """Return the fewest malignant cases that must be flagged to reach ``target`` sensitivity."""
    # Compare the same ratios that sensitivity reports, so 0.7 * 10 rounding cannot bite.
    achievable = np.arange(1, n_positive + 1) / n_positive
    return int(np.argmax(achievable >= target)) + 1


def _labels(y_true: npt.ArrayLike) -> IntArray:
    """Validate binary labels and return them as a 1-D int64 array."""
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {labels.shape}")
    if labels.size == 0:
        raise ValueError("y_true is empty")
    if not np.all(np.isin(labels, CLASS_LABELS)):
        raise ValueError("y_true must contain only 0 (benign) and 1 (malignant)")
    return labels.astype(np.int64)


def _probabilities(prob: npt.ArrayLike, n_samples: int) -> FloatArray:
    """Validate probabilities in [0, 1] matching the labels and return them as float64."""
    probabilities = np.asarray(prob, dtype=np.float64)
    if probabilities.shape != (n_samples,):
        raise ValueError(f"prob must have shape ({n_samples},), got {probabilities.shape}")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):
        raise ValueError("prob must contain finite probabilities in [0, 1]")
    return probabilities


def _logits(logits: npt.ArrayLike, n_samples: int) -> FloatArray:
    """Validate finite logits matching the labels and return them as float64."""
    scores = np.asarray(logits, dtype=np.float64)
    if scores.shape != (n_samples,):
        raise ValueError(f"logits must have shape ({n_samples},), got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("logits must be finite")
    return scores


def _check_target_sensitivity(target: float) -> None:
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target!r}")


def _check_threshold(threshold: float) -> None:
    # A NaN threshold would silently flag nobody, since every comparison with NaN is False.
    if math.isnan(threshold):
        raise ValueError("threshold is NaN")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _ratio(numerator: int, denominator: int) -> float | None:
    """Return numerator / denominator, or None when the denominator is zero."""
    return float(numerator / denominator) if denominator else None


def _divide_or_nan(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> FloatArray:
    """Divide elementwise, giving NaN where the denominator is zero."""
    top = np.asarray(numerator, dtype=np.float64)
    bottom = np.asarray(denominator, dtype=np.float64)
    result = np.full(np.broadcast_shapes(top.shape, bottom.shape), np.nan)
    np.divide(top, bottom, out=result, where=bottom != 0)
    return result


def _nan_to_none(values: FloatArray) -> list[float | None]:
    return [None if math.isnan(value) else float(value) for value in values]


def _json_ready(value: Any) -> Any:
    """Convert numpy scalars to Python numbers and NaN to None, recursively."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value
