"""Write `models/report.md`: the three architectures compared on the same held-out split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training import evaluation, plots
from training.model_card import (
    DISCLAIMER,
    WITHIN_SOURCE_MEANING,
    fmt,
    fmt_interval,
    head_refit_sentence,
    metrics_table,
    serving_size_sentence,
    shortcut_summary,
    within_source_roc_auc,
)
from training.pipeline import (
    EVALUATION_FILE,
    SCORES_FILE,
    plot_test_results,
)

SERVED = "efficientnet_lite0"
ORDER = ("custom_cnn", "vgg16", "efficientnet_lite0", "efficientnet_b0")


def load_records(comparison_root: Path) -> dict[str, dict[str, Any]]:
    """Every evaluated architecture under `comparison_root`, in a stable order."""
    records = {}
    for folder in sorted(comparison_root.iterdir()) if comparison_root.is_dir() else []:
        if (folder / EVALUATION_FILE).is_file():
            records[folder.name] = json.loads((folder / EVALUATION_FILE).read_text())
    return dict(
        sorted(
            records.items(),
            key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else len(ORDER),
        )
    )


def write_report(models_dir: Path, *, command: str) -> Path:
    """Regenerate report.md and every test plot (comparison and per run) from the saved
    evaluation records."""
    comparison_root = models_dir / "comparison"
    plots_dir = models_dir / "plots"
    records = load_records(comparison_root)
    if not records:
        raise FileNotFoundError(f"no evaluations under {comparison_root}; train first")

    curves = {}
    for name, record in records.items():
        with np.load(comparison_root / name / SCORES_FILE) as scores:
            labels, logits = scores["labels"], scores["logits"]
        calibrated = evaluation.apply_temperature(logits, record["temperature"])
        uncalibrated = evaluation.sigmoid(logits)
        curves[record["display_name"]] = (labels, calibrated)
        plot_test_results(name, record, labels, calibrated, uncalibrated, plots_dir=plots_dir)
    plots.plot_roc_curves(curves, plots_dir / "roc.png", title="ROC on the test split")
    plots.plot_pr_curves(
        curves, plots_dir / "precision_recall.png", title="Precision-recall on the test split"
    )

    lines = [
        "# Model comparison",
        "",
        DISCLAIMER,
        "",
        f"`{command}` trains and evaluates all three; EfficientNet's run writes the served "
        "model; `python -m training report` rewrites this file "
        "and its test plots from the saved evaluations. All models see the same seeded, "
        "stratified split; temperature and threshold are fitted on validation, and the test "
        "split is used once, for these figures. Threshold: chosen for 95% sensitivity on "
        "validation with a bootstrap margin (see each model's threshold line). Latency: median "
        "CPU milliseconds per image (compiled Keras call; 1 image per call, and per image in "
        "batches of 32) on the machine that evaluated them (listed under the table).",
        "",
        "## Held-out test split, at each model's shipped threshold",
        "",
        "| model | test images | params | file MB | train min | ms/img (1 / 32) | accuracy "
        "| precision | recall (sensitivity) | specificity | F1 | ROC AUC [95% CI] | PR AUC "
        "| log loss | Brier | ECE before → after | threshold |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in records.items():
        m = r["test"]["overall"]
        lat = r["latency"]
        cal = r["calibration"]["test"]
        served = " **(served)**" if name == SERVED else ""
        lines.append(
            f"| {r['display_name']}{served} | {m['n']} | {r['parameters'] / 1e6:.2f} M "
            f"| {r['model_file_bytes'] / 1e6:.1f} | {r['training_seconds'] / 60:.1f} "
            f"| {lat['batch_1_ms_per_image']:.1f} / {lat['batch_32_ms_per_image']:.1f} "
            f"| {fmt(m['accuracy'])} | {fmt(m['precision'])} | {fmt(m['recall'])} "
            f"| {fmt(m['specificity'])} | {fmt(m['f1'])} "
            f"| {fmt(m['roc_auc'])} {fmt_interval(m['ci'].get('roc_auc'))} | {fmt(m['pr_auc'])} "
            f"| {fmt(m['log_loss'])} | {fmt(m['brier'])} "
            f"| {fmt(cal['ece_before'])} → {fmt(cal['ece_after'])} "
            f"| {r['threshold']['threshold']:.4f} |"
        )
    if len({r["test"]["overall"]["n"] for r in records.values()}) > 1:
        lines += [
            "",
            "Rows with different test images were evaluated on different splits (data or seed) "
            "and are not comparable; retrain them together with `python -m training compare`.",
        ]
    machines = {
        r["display_name"]: r["latency"].get("cpu", "the machine that trained it")
        for r in records.values()
    }
    lines += [
        "",
        (
            f"Latency measured on: {next(iter(machines.values()))}, every row."
            if len(set(machines.values())) == 1
            else "Latency measured on: "
            + "; ".join(f"{model}: {machine}" for model, machine in machines.items())
            + "."
        ),
        "",
        "ROC AUC within each source, averaged over the sources, validation / test ("
        + WITHIN_SOURCE_MEANING
        + "): "
        + "; ".join(
            f"{r['display_name']} {fmt(within_source_roc_auc(r, 'validation'))} / "
            f"{fmt(within_source_roc_auc(r, 'test'))}"
            for r in records.values()
        )
        + ".",
        "",
        "Validation ROC AUC (what model choices were made on): "
        + "; ".join(
            f"{r['display_name']} {fmt(r['validation']['overall']['roc_auc'])}"
            for r in records.values()
        )
        + ".",
        "",
        "![ROC](plots/roc.png) ![Precision-recall](plots/precision_recall.png)",
        "",
    ]
    for name, r in records.items():
        test = r["test"]
        choice = r["threshold"]
        tta = r["test_time_augmentation"]
        shortcut = r["source_shortcut_check"]
        trained_on = f" on {r['trained_on']}" if r.get("trained_on") else ""
        lines += [
            f"## {r['display_name']}",
            "",
            f"Input {r['input_size']} px (effective resolution {r['effective_resolution']} px)."
            + serving_size_sentence(r.get("serving_size"))
            + head_refit_sentence(r.get("head_refit"))
            + " "
            f"Trained in {r['training_seconds'] / 60:.1f} min{trained_on}, "
            f"{_training_precision(models_dir, name, r)}. "
            f"Threshold {choice['threshold']:.4f} "
            f"(point threshold {choice['point_threshold']:.4f}; "
            f"validation sensitivity {fmt(choice['validation_sensitivity'])}, specificity "
            f"{fmt(choice['validation_specificity'])}). Temperature {r['temperature']:.3f}. "
            + _tta_sentence(tta),
            "",
            *metrics_table({"overall": test["overall"], **test["by_group"]}),
            "",
            "Source-shortcut check (images not trained on; for each diagnosis and each label found "
            "in two sources, ROC AUC of the score for telling the sources apart; 0.5 = not at "
            "all): " + shortcut_summary(shortcut) + ".",
            "",
            "Confusion matrix (rows true benign/malignant, columns predicted): "
            f"`{test['overall']['confusion_matrix']}`",
            "",
            "```",
            test["overall"]["classification_report_text"].rstrip(),
            "```",
            "",
            f"![confusion](plots/confusion_{name}.png) ![reliability](plots/reliability_{name}.png)"
            f" ![training](plots/training_{name}.png)",
            "",
        ]
    path = models_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _training_precision(models_dir: Path, name: str, record: dict[str, Any]) -> str:
    """The precision a run trained in: float32 runs were timed on a CPU without bf16 units."""
    precision = record.get("training_precision")
    saved_config = models_dir / name / "training_config.json"
    if precision is None and saved_config.is_file():
        precision = json.loads(saved_config.read_text()).get("precision")
    return f"precision {precision or 'not recorded'}"


def _tta_sentence(tta: dict[str, Any]) -> str:
    if "validation_roc_auc_with" not in tta:
        return "Test-time augmentation: off."
    state = "on" if tta["used"] else "off"
    return (
        f"Test-time augmentation (four flips): {state} — validation ROC AUC "
        f"{tta['validation_roc_auc_without']:.3f} without, "
        f"{tta['validation_roc_auc_with']:.3f} with."
    )
