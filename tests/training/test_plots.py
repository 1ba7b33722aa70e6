import numpy as np
import pytest

from training.evaluation import sigmoid
from training.plots import (
    plot_confusion_matrix,
    plot_pr_curves,
    plot_reliability,
    plot_roc_curves,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scored_cases() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(int)
    logits = rng.normal(np.where(labels == 1, 1.5, -1.5), 1.5)
    return labels, logits


def assert_is_a_real_png(path, expected_path):
    assert path == expected_path
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 10_000
    # IHDR holds the pixel size; an empty or degenerate figure would be tiny.
    width = int.from_bytes(content[16:20], "big")
    height = int.from_bytes(content[20:24], "big")
    assert width >= 400
    assert height >= 400


def test_it_plots_roc_curves(tmp_path, scored_cases):
    labels, logits = scored_cases
    curves = {"efficientnet": (labels, sigmoid(logits)), "baseline": (labels, sigmoid(logits / 4))}

    path = plot_roc_curves(curves, tmp_path / "roc.png", title="Validation ROC")

    assert_is_a_real_png(path, tmp_path / "roc.png")


def test_it_plots_precision_recall_curves(tmp_path, scored_cases):
    labels, logits = scored_cases

    path = plot_pr_curves({"efficientnet": (labels, sigmoid(logits))}, tmp_path / "pr.png")

    assert_is_a_real_png(path, tmp_path / "pr.png")


def test_it_plots_a_reliability_diagram(tmp_path, scored_cases):
    labels, logits = scored_cases
    probs = {"before temperature": sigmoid(3 * logits), "after temperature": sigmoid(logits)}

    path = plot_reliability(labels, probs, tmp_path / "reliability.png", n_bins=10)

    assert_is_a_real_png(path, tmp_path / "reliability.png")


def test_it_plots_a_confusion_matrix(tmp_path):
    path = plot_confusion_matrix([[820, 95], [12, 273]], tmp_path / "confusion.png")

    assert_is_a_real_png(path, tmp_path / "confusion.png")


def test_it_plots_training_curves_with_phase_boundaries(tmp_path):
    epochs = np.arange(1, 13)
    history = {
        "loss": list(1.0 / epochs),
        "val_loss": list(1.1 / epochs + 0.05),
        "auc": list(1.0 - 0.4 / epochs),
        "val_auc": list(0.95 - 0.4 / epochs),
        "learning_rate": [1e-3] * 5 + [1e-5] * 7,
    }

    path = plot_training_curves(history, tmp_path / "history.png", phase_boundaries=[5])

    assert_is_a_real_png(path, tmp_path / "history.png")


def test_it_creates_missing_folders(tmp_path):
    target = tmp_path / "reports" / "v1" / "confusion.png"

    path = plot_confusion_matrix(np.array([[5, 1], [0, 4]]), target)

    assert path.is_file()


def test_it_refuses_a_curve_with_a_single_class(tmp_path):
    with pytest.raises(ValueError, match="both"):
        plot_roc_curves({"model": ([0, 0, 0], [0.1, 0.2, 0.3])}, tmp_path / "roc.png")


def test_it_refuses_a_confusion_matrix_that_does_not_match_its_labels(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        plot_confusion_matrix(np.eye(3), tmp_path / "confusion.png")
