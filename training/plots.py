"""PNG figures for training and evaluation reports.

Figures are built with matplotlib's object-oriented API on the Agg canvas, never through
``pyplot``: nothing touches a display or the global figure registry, so there is no figure to
close afterwards and the functions are safe to call from worker processes. Each function writes
one PNG (creating missing parent folders) and returns its path.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn import metrics

from training.evaluation import (
    MALIGNANT,
    TARGET_NAMES,
    expected_calibration_error,
    reliability_curve,
)

DPI = 120
CHANCE_STYLE: dict[str, Any] = {"color": "grey", "linestyle": "--", "linewidth": 1.0}

PathLike = str | os.PathLike[str]
ScoredLabels = tuple[npt.ArrayLike, npt.ArrayLike]


def plot_roc_curves(
    curves: Mapping[str, ScoredLabels], path: PathLike, title: str = "ROC curve"
) -> Path:
    """Plot one ROC curve per model (``{name: (y_true, prob)}``) with its AUC in the legend."""
    _require_entries(curves, "curves")
    figure = _new_figure((7.0, 8.0))
    axes = figure.add_subplot()
    for name, (y_true, prob) in curves.items():
        labels, probabilities = _scored_labels(name, y_true, prob)
        false_positive_rate, true_positive_rate, _ = metrics.roc_curve(labels, probabilities)
        auc = metrics.roc_auc_score(labels, probabilities)
        axes.plot(false_positive_rate, true_positive_rate, label=f"{name} (AUC = {auc:.3f})")
    axes.plot([0.0, 1.0], [0.0, 1.0], label="chance", **CHANCE_STYLE)
    axes.set(
        title=_wrapped(title),
        xlabel="False positive rate (1 - specificity)",
        ylabel="True positive rate (sensitivity)",
        xlim=(0.0, 1.0),
        ylim=(0.0, 1.02),
    )
    axes.grid(alpha=0.3)
    _legend_below(figure, axes)
    return _save(figure, path)


def plot_pr_curves(
    curves: Mapping[str, ScoredLabels], path: PathLike, title: str = "Precision-recall curve"
) -> Path:
    """Plot one precision-recall curve per model with its average precision in the legend.

    A dashed line marks the malignant prevalence, the precision of a random classifier.
    """
    _require_entries(curves, "curves")
    figure = _new_figure((7.0, 8.0))
    axes = figure.add_subplot()
    prevalences: set[float] = set()
    for name, (y_true, prob) in curves.items():
        labels, probabilities = _scored_labels(name, y_true, prob)
        precision, recall, _ = metrics.precision_recall_curve(labels, probabilities)
        average_precision = metrics.average_precision_score(labels, probabilities)
        axes.plot(recall, precision, label=f"{name} (AP = {average_precision:.3f})")
        prevalences.add(round(float(np.mean(labels == MALIGNANT)), 4))
    for prevalence in sorted(prevalences):
        axes.axhline(prevalence, label=f"chance (prevalence = {prevalence:.3f})", **CHANCE_STYLE)
    axes.set(
        title=_wrapped(title),
        xlabel="Recall (sensitivity)",
        ylabel="Precision (positive predictive value)",
        xlim=(0.0, 1.0),
        ylim=(0.0, 1.02),
    )
    axes.grid(alpha=0.3)
    _legend_below(figure, axes)
    return _save(figure, path)


def plot_reliability(
    y_true: npt.ArrayLike,
    probs: Mapping[str, npt.ArrayLike],
    path: PathLike,
    n_bins: int = 15,
    title: str = "Reliability diagram",
) -> Path:
    """Plot observed malignant frequency against mean predicted probability per bin.

    ``probs`` maps a label to probabilities for the same cases, e.g.
    ``{"before temperature": p0, "after temperature": p1}``. Each legend entry carries its ECE;
    a lower panel shows how many cases fall in each bin (log scale, since most benign cases
    crowd the lowest bin).
    """
    _require_entries(probs, "probs")
    figure = _new_figure((6.0, 7.5))
    calibration_axes, count_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    calibration_axes.plot([0.0, 1.0], [0.0, 1.0], label="perfect calibration", **CHANCE_STYLE)
    for name, prob in probs.items():
        curve = reliability_curve(y_true, prob, n_bins)
        ece = expected_calibration_error(y_true, prob, n_bins)
        filled = curve.count > 0
        (line,) = calibration_axes.plot(
            curve.mean_predicted[filled],
            curve.observed_frequency[filled],
            marker="o",
            label=f"{name} (ECE = {ece:.3f})",
        )
        count_axes.stairs(curve.count, curve.bin_edges, color=line.get_color(), label=name)
    calibration_axes.set(
        title=_wrapped(title),
        ylabel="Observed malignant frequency",
        xlim=(0.0, 1.0),
        ylim=(0.0, 1.0),
    )
    calibration_axes.grid(alpha=0.3)
    calibration_axes.legend(loc="upper left")
    count_axes.set_yscale("log")
    count_axes.set(xlabel="Mean predicted malignant probability", ylabel="Cases per bin")
    count_axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_confusion_matrix(
    cm: npt.ArrayLike,
    path: PathLike,
    labels: Sequence[str] = TARGET_NAMES,
    title: str = "Confusion matrix",
) -> Path:
    """Plot a confusion matrix (rows true, columns predicted) annotated with counts.

    Each cell also shows its share of the true class, so the diagonal reads as specificity
    and sensitivity for the benign/malignant layout ``[[tn, fp], [fn, tp]]``.
    """
    counts = np.asarray(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"cm must be a square matrix, got shape {counts.shape}")
    if len(labels) != counts.shape[0]:
        raise ValueError(f"{len(labels)} labels given for a {counts.shape[0]}-class matrix")
    row_totals = counts.sum(axis=1, keepdims=True)
    row_shares = np.divide(
        counts, row_totals, out=np.zeros(counts.shape, dtype=np.float64), where=row_totals > 0
    )

    figure = _new_figure((5.0, 4.5))
    axes = figure.add_subplot()
    image = axes.imshow(row_shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="Share of true class")
    for row, column in np.ndindex(counts.shape):
        share = row_shares[row, column]
        axes.text(
            column,
            row,
            f"{counts[row, column]:,}\n({share:.1%})",
            ha="center",
            va="center",
            # Dark cells need light text to stay readable.
            color="white" if share > 0.5 else "black",
        )
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels=list(labels))
    axes.set_yticks(ticks, labels=list(labels))
    axes.set(title=_wrapped(title), xlabel="Predicted", ylabel="True")
    return _save(figure, path)


def plot_training_curves(
    history: Mapping[str, Sequence[float]],
    path: PathLike,
    phase_boundaries: Sequence[int] = (),
    title: str = "Training history",
) -> Path:
    """Plot a Keras ``History.history`` dict, one panel per metric with train and validation.

    ``val_<name>`` joins the panel of ``<name>``. ``phase_boundaries`` are epoch counts after
    which a new training phase starts (e.g. ``[5]`` when fine-tuning began after five epochs of
    head training); each is drawn as a vertical line between those epochs.
    """
    _require_entries(history, "history")
    metric_names = list(dict.fromkeys(key.removeprefix("val_") for key in history))
    n_columns = min(2, len(metric_names))
    n_rows = math.ceil(len(metric_names) / n_columns)
    figure = _new_figure((6.0 * n_columns, 3.8 * n_rows))
    figure.suptitle(_wrapped(title))
    panels = figure.subplots(n_rows, n_columns, squeeze=False).ravel()
    for axes in panels[len(metric_names) :]:
        axes.set_visible(False)

    for axes, metric_name in zip(panels, metric_names, strict=False):
        for key, split in ((metric_name, "train"), (f"val_{metric_name}", "validation")):
            if key in history:
                values = np.asarray(history[key], dtype=np.float64)
                axes.plot(np.arange(1, values.size + 1), values, marker=".", label=split)
        for index, boundary in enumerate(phase_boundaries):
            axes.axvline(
                boundary + 0.5,
                color="grey",
                linestyle=":",
                label="phase change" if index == 0 else None,
            )
        if metric_name in {"lr", "learning_rate"}:
            axes.set_yscale("log")
        axes.set(title=_readable(metric_name), xlabel="Epoch", ylabel=_readable(metric_name))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    return _save(figure, path)


def _wrapped(title: str, width: int = 60) -> str:
    """Long titles (models are named by architecture and run) over several lines, not clipped."""
    return "\n".join(textwrap.wrap(title, width)) or title


def _legend_below(figure: Figure, axes: Any) -> None:
    """The legend under the plot: inside square axes, a few long model names squeezed the
    curves into a corner of the figure."""
    figure.legend(*axes.get_legend_handles_labels(), loc="outside lower center", fontsize="small")


def _new_figure(size: tuple[float, float]) -> Figure:
    """Create a figure attached to an Agg canvas, outside pyplot's registry."""
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: PathLike) -> Path:
    """Write the figure as PNG, creating parent folders, and return the path."""
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(destination, dpi=DPI, format="png")
    return destination


def _scored_labels(
    name: str, y_true: npt.ArrayLike, prob: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Validate one curve's labels and scores; curves need both classes to be drawn."""
    labels = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(prob, dtype=np.float64)
    if labels.ndim != 1 or labels.shape != probabilities.shape:
        raise ValueError(f"{name}: y_true and prob must be 1-D arrays of the same length")
    if set(np.unique(labels).tolist()) != {0, 1}:
        raise ValueError(f"{name}: a curve needs both benign (0) and malignant (1) cases")
    return labels, probabilities


def _require_entries(mapping: Mapping[str, object], argument: str) -> None:
    if not mapping:
        raise ValueError(f"{argument} is empty; nothing to plot")


def _readable(metric_name: str) -> str:
    """Turn a Keras metric key like ``pr_auc`` into a label like ``PR AUC``."""
    acronyms = {"auc", "ece", "lr", "pr", "roc"}
    label = " ".join(word.upper() if word in acronyms else word for word in metric_name.split("_"))
    return label[:1].upper() + label[1:]
