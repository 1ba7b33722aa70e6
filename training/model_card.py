"""Write MODEL_CARD.md for an artifact from its metadata and evaluation record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.disclaimer import DISCLAIMER as PROJECT_DISCLAIMER

# The project's one disclaimer, quoted at the top of every page written here.
DISCLAIMER = f"> {PROJECT_DISCLAIMER}"


def fmt(value: Any, digits: int = 3) -> str:
    """A metric for a Markdown table: fixed digits, or an en dash when undefined."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_interval(interval: Any) -> str:
    """A bootstrap interval as "[lo, hi]"."""
    if not interval:
        return "n/a"
    low, high = interval
    return f"[{low:.3f}, {high:.3f}]"


def metrics_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """One row per group of the operating-point metrics, with bootstrap intervals."""
    lines = [
        "| group | n (malignant) | sensitivity [95% CI] | specificity [95% CI] | flagged "
        "| ROC AUC [95% CI] | PR AUC | precision | F1 | accuracy | log loss | Brier | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        ci = m.get("ci") or {}
        lines.append(
            f"| {name} | {m['n']} ({m['n_positive']}) "
            f"| {fmt(m['sensitivity'])} {fmt_interval(ci.get('sensitivity'))} "
            f"| {fmt(m['specificity'])} {fmt_interval(ci.get('specificity'))} "
            f"| {fmt(m.get('flagged'))} "
            f"| {fmt(m['roc_auc'])} {fmt_interval(ci.get('roc_auc'))} "
            f"| {fmt(m['pr_auc'])} | {fmt(m['precision'])} | {fmt(m['f1'])} "
            f"| {fmt(m['accuracy'])} | {fmt(m['log_loss'])} | {fmt(m['brier'])} | {fmt(m['ece'])} |"
        )
    return lines


def shortcut_summary(check: dict[str, Any]) -> str:
    """Summarise a source-shortcut check: "diagnosis melanoma: a vs b 0.52 (n 40/80); ..."."""
    parts = []
    for diagnosis, entry in check.get("by_diagnosis", {}).items():
        counts = "/".join(str(n) for n in entry["n_by_source"].values())
        parts.append(f"{diagnosis} {entry['source_auc']:.2f} (n {counts})")
    return "; ".join(parts) or "no kind of lesion is shared by two sources"


def serving_size_sentence(choice: dict[str, Any] | None) -> str:
    """How the serving input size was chosen, where it differs from the training size."""
    if not choice or choice["input_size"] == choice["training_input_size"]:
        return ""
    by_size = choice.get("validation_roc_auc_by_size")
    measured = (
        " (validation ROC AUC by size: "
        + ", ".join(f"{size} px {fmt(auc)}" for size, auc in by_size.items())
        + ")"
        if by_size
        else ""
    )
    return (
        f" Trained at {choice['training_input_size']} px and served at {choice['input_size']} px, "
        f"chosen by {choice['decided_by']}{measured}."
    )


def head_refit_sentence(choice: dict[str, Any] | None) -> str:
    """Whether the final layer was refitted (training.head_refit), with the validation scores
    that decided it; empty where it was not tried."""
    if not choice or "validation_roc_auc_refit" not in choice:
        return ""
    scores = (
        f"validation ROC AUC {fmt(choice['validation_roc_auc_refit'])} refitted against "
        f"{fmt(choice['validation_roc_auc_trained'])} as trained"
    )
    if choice["used"]:
        return (
            " The final layer was refitted as an L2-regularised logistic regression on the "
            f"training images' features (C = {choice['strength']:g}; {scores})."
        )
    return f" Refitting the final layer was measured and not kept ({scores})."


def paragraph(text: str) -> list[str]:
    """Markdown lines for `text` followed by a blank line; none for an empty text."""
    return [text, ""] if text else []


WITHIN_SOURCE_MEANING = (
    "the figure to expect on one clinic's images; the overall ROC AUC also counts how one "
    "source's lesions rank against the other's, and the sources differ in malignant share"
)


def within_source_roc_auc(record: dict[str, Any], subset: str) -> float | None:
    """The ROC AUC within each source, averaged over the sources; None with fewer than two
    sources that hold both labels. `evaluation.source_balanced_roc_auc` from the scores, here
    taken from the per-source ROC AUCs a stored record keeps."""
    aucs = [
        group["roc_auc"]
        for group in record[subset]["by_group"].values()
        if group.get("roc_auc") is not None
    ]
    return sum(aucs) / len(aucs) if len(aucs) >= 2 else None


def within_source_sentence(record: dict[str, Any]) -> str:
    """The within-source ROC AUC on validation and test, with what it means; empty where it is
    undefined."""
    validation = within_source_roc_auc(record, "validation")
    test = within_source_roc_auc(record, "test")
    if validation is None or test is None:
        return ""
    return (
        f"ROC AUC within each source, averaged over the sources: validation {fmt(validation)}, "
        f"test {fmt(test)}. This is {WITHIN_SOURCE_MEANING}."
    )


def describe_latency(latency: dict[str, Any]) -> str:
    """A latency record in words: one image per call, and per image in batches of 32."""
    return (
        f"{latency['batch_1_ms_per_image']:.1f} ms for one image, "
        f"{latency['batch_32_ms_per_image']:.1f} ms per image in batches of 32"
    )


def write_model_card(path: Path, metadata: dict[str, Any], record: dict[str, Any]) -> None:
    """Write the card: intended use, data, metrics per source, threshold, limits."""
    test = record["test"]
    choice = record["threshold"]
    calibration = record["calibration"]
    dataset = metadata["dataset"]
    source_lines = [
        f"- `{name}`: {counts['benign']} benign / {counts['malignant']} malignant"
        for name, counts in dataset["sources"].items()
    ]
    shortcut = record["source_shortcut_check"]
    latency = record["latency"]
    megabytes = record["model_file_bytes"] / 1e6
    tta = "on" if metadata["test_time_augmentation"] else "off"
    lines = [
        f"# Model card: {metadata['display_name']}",
        "",
        DISCLAIMER,
        "",
        f"- Version: `{metadata['version']}`",
        f"- Architecture: {metadata['backbone']}",
        f"- Input: {metadata['input_size']}x{metadata['input_size']} RGB, 0..255; every image "
        f"is first brought to an effective resolution of {metadata['effective_resolution']} px."
        + serving_size_sentence(record.get("serving_size"))
        + head_refit_sentence(record.get("head_refit")),
        "- Output: calibrated probability of malignancy "
        f"(temperature {metadata['temperature']:.3f}); flagged high-risk at probability "
        f">= {metadata['threshold']:.4f}.",
        f"- Parameters: {record['parameters']:,}; model file {megabytes:.1f} MB; "
        f"CPU latency {describe_latency(latency)}"
        + (f" (on {latency['cpu']})." if "cpu" in latency else "."),
        f"- Test-time augmentation (four flips): {tta}.",
        "",
        "## Intended use",
        "Teaching and research on how an image classifier could help order a review queue of "
        "dermoscopic images. It is not a diagnosis, not a screening tool and not a medical device. "
        "A high-risk flag means only that the model's score passed a threshold chosen for high "
        "sensitivity; a low score never rules anything out.",
        "",
        "## Data",
        f"{dataset['images']} dermoscopic images from the ISIC Archive (CC-0 / CC-BY / CC-BY-NC), "
        "labelled benign or malignant (malignant: melanoma, basal cell carcinoma, squamous cell "
        "carcinoma, actinic keratosis):",
        *source_lines,
        "",
        f"Split (seed {metadata['split']['seed']}, stratified by label and source, saved as "
        f"`split.csv`): {metadata['split']['counts']}. "
        f"Manifest sha256 `{dataset['manifest_sha256']}`.",
        "",
        "## Operating threshold",
        f"Chosen on the validation split for a target sensitivity of "
        f"{choice['target_sensitivity']:.2f}, with a margin: {choice['method']}. "
        f"Point threshold without margin {choice['point_threshold']:.4f}; shipped "
        f"{choice['threshold']:.4f} (validation sensitivity "
        f"{fmt(choice['validation_sensitivity'])}, "
        f"specificity {fmt(choice['validation_specificity'])})." + _per_source_thresholds(choice),
        "",
        "## Test metrics (held-out split, at the shipped threshold)",
        *metrics_table({"overall": test["overall"], **test["by_group"]}),
        "",
        *paragraph(within_source_sentence(record)),
        *_holdout_section(record),
        *_gate_section(metadata.get("input_gate")),
        "## Calibration",
        f"Temperature scaling fitted on validation. Expected calibration error (15 bins): "
        f"validation {calibration['validation']['ece_before']:.3f} → "
        f"{calibration['validation']['ece_after']:.3f}; test "
        f"{calibration['test']['ece_before']:.3f} → {calibration['test']['ece_after']:.3f}.",
        "",
        "## Known limits",
        "- Every source is from the ISIC Archive. Patient identifiers exist for one source "
        "only and lesion identifiers for some, so the split groups what it can. A held-out "
        "source (above) measures a clinic never trained on; images from other cameras, clinics "
        "or non-dermoscopic photos may still score worse.",
        "- ISIC images come mostly from lighter-skinned patients (Fitzpatrick I-III); performance "
        "on darker skin is unknown and likely worse.",
        "- The sources differ in resolution and malignant share. Every image is brought to one "
        "effective resolution so the model cannot tell sources apart by sharpness, and the "
        "training loss weighs each (label, source) group so that the source alone predicts "
        "little. Check on the images not trained on: for each diagnosis and each label found in "
        "two sources, how well the score alone tells the sources apart (ROC AUC; 0.5 = none): "
        + shortcut_summary(shortcut)
        + ".",
        "- Actinic keratosis is grouped with malignant (pre-malignant), as in HAM10000's `akiec`.",
        *_backbone_limit(metadata["architecture"]),
        "",
    ]
    path.write_text("\n".join(lines))


def _per_source_thresholds(choice: dict[str, Any]) -> str:
    by_source = choice.get("threshold_by_group") or {}
    if not by_source:
        return ""
    listed = ", ".join(f"`{source}` {value:.4f}" for source, value in by_source.items())
    return f" Each source's own threshold by the same rule: {listed}."


def _holdout_section(record: dict[str, Any]) -> list[str]:
    holdout = record.get("holdout")
    if not holdout:
        return []
    sources = ", ".join(f"`{source}`" for source in record.get("holdout_sources", []))
    return [
        "## A clinic never seen (held-out source, at the shipped threshold)",
        f"{sources}: kept out of training and out of every choice, scored once at the end.",
        "",
        *metrics_table({"overall": holdout["overall"]}),
        "",
    ]


def _gate_section(gate: dict[str, Any] | None) -> list[str]:
    if not gate:
        return []
    real = gate["real_images_turned_away"]
    caught = gate["not_dermoscopic_caught"]
    rows = [
        f"| {name} | {entry['images']} | {entry['turned_away']} | {entry['share']:.1%} |"
        for name, entry in real.items()
    ]
    kinds = ", ".join(
        f"{kind} {entry['turned_away']}/{entry['images']}"
        for kind, entry in gate["not_dermoscopic_by_kind"].items()
    )
    return [
        "## Input gate",
        "Before a score is trusted, the worker checks the image: too dark, too bright, too "
        "blurred or too noisy, or with more of it perfectly flat than skin ever is (pages, "
        "screenshots); and whether the model's pooled features lie as far from its training "
        "images' as real dermoscopic images ever do, both from their mean (Mahalanobis "
        "distance) and from the nearest of them (cosine distance). Every limit sits in the "
        "tail of the validation images. An image that fails is given a reason instead of a "
        "risk. The images that are not dermoscopic are drawn afresh, not those the checks were "
        "designed on.",
        "",
        "| real dermoscopic images | images | turned away | share |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Images that are not dermoscopic, caught: {caught['caught']} of {caught['images']} "
        f"({caught['share']:.1%}); by kind: {kinds}.",
        "",
    ]


def _backbone_limit(architecture: str) -> list[str]:
    if architecture != "efficientnet_lite0":
        return []
    return [
        "- The backbone is EfficientNet-Lite0, a stand-in for EfficientNet-B0 whose ImageNet "
        "weights were not available."
    ]
