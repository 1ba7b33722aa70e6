"""The training pipeline end to end on a tiny generated dataset."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from inference import ModelArtifactError, load_classifier
from tests.training.conftest import write_tiny_dataset
from training.backbones import build_base, build_classifier
from training.config import ARCHITECTURES, EFFICIENTNETS, Phase, TrainingConfig, default_config
from training.data import Dataset, Sample, Split, load_dataset, split_dataset, subsample
from training.evaluation import (
    WithinSourceGain,
    apply_temperature,
    expected_calibration_error,
    sigmoid,
)
from training.hardware import describe_training_device, resolve_precision
from training.pipeline import SCORES_FILE, choose_serving_size, finalize
from training.report import write_report
from training.train import LOGITS_FILE, MODEL_FILE, resize_classifier, set_trainable, train

pytestmark = pytest.mark.slow


def _smoke_config(architecture: str, **changes: object) -> TrainingConfig:
    config = default_config(architecture)  # type: ignore[arg-type]
    return config.with_overrides(
        input_size=32,
        effective_resolution=32,
        batch_size=8,
        phases=tuple(
            Phase(p.name, p.trainable, 1, p.learning_rate, p.monitor, 1) for p in config.phases
        ),
        **changes,
    )


@dataclass(frozen=True)
class TrainedRun:
    """A Lite0 smoke run on a tiny dataset, trained once for the tests that only evaluate it."""

    run_dir: Path
    dataset: Dataset
    split: Split
    config: TrainingConfig


@pytest.fixture(scope="module")
def trained_lite0(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    root = tmp_path_factory.mktemp("trained_lite0")
    unseen = write_tiny_dataset(
        root / "unseen", per_class_and_source=4, seed=1, sources=(("unseen-source", 48),)
    )
    dataset = load_dataset([write_tiny_dataset(root / "data"), unseen])
    config = _smoke_config("efficientnet_lite0", holdout_sources=("unseen-source",))
    split = split_dataset(dataset, seed=config.seed, holdout_sources=config.holdout_sources)
    train(config, split, root / "run", weights_path=None)
    return TrainedRun(root / "run", dataset, split, config)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_architecture_trains_a_step_and_saves_logits(
    architecture: str, tiny_dataset: Path, tmp_path: Path
) -> None:
    dataset = load_dataset(tiny_dataset)
    split = split_dataset(dataset, seed=0)
    # The last phase of each recipe trains the most layers. Earlier phases differ only in which
    # layers train (checked per architecture below) and run whole in the Lite0 runs here; each
    # phase costs a compilation, tens of seconds for an EfficientNet.
    config = _smoke_config(architecture)
    config = config.with_overrides(phases=config.phases[-1:])
    result = train(config, split, tmp_path / "run", weights_path=None)

    assert (tmp_path / "run" / MODEL_FILE).is_file()
    with np.load(tmp_path / "run" / LOGITS_FILE) as saved:
        assert saved["validation_logits"].shape == (len(split.validation),)
        assert saved["test_logits"].shape == (len(split.test),)
        assert np.isfinite(saved["test_logits"]).all()
    assert len(result.history["loss"]) == 1
    assert result.model.output_shape == (None, 1)


@pytest.mark.parametrize("architecture", EFFICIENTNETS)
def test_the_top_phase_unfreezes_only_the_top_stages_and_no_batchnorm(architecture: str) -> None:
    import keras

    base = build_base(architecture, 32)  # type: ignore[arg-type]
    config = default_config(architecture)  # type: ignore[arg-type]
    set_trainable(base, "top", config.top_layer_prefixes)

    trainable = [layer for layer in base.layers if layer.trainable and layer.weights]
    assert trainable, "the top phase trains nothing"
    assert all(layer.name.startswith(config.top_layer_prefixes) for layer in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    # The whole last stage and the head convolution learn, not a stray layer of them.
    top_convolutions = [
        layer
        for layer in base.layers
        if layer.name.startswith(("block7", "top_")) and isinstance(layer, keras.layers.Conv2D)
    ]
    assert top_convolutions
    assert all(layer.trainable for layer in top_convolutions)
    stem = [layer for layer in base.layers if layer.name.startswith("stem") and layer.weights]
    assert stem
    assert not any(layer.trainable for layer in stem)


def test_efficientnet_b0_builds_with_random_weights() -> None:
    base = build_base("efficientnet_b0", 64)
    model = build_classifier(base, architecture="efficientnet_b0")
    assert model.output_shape == (None, 1)
    assert any("_se_" in layer.name for layer in base.layers)


def test_lite0_loads_the_shared_imagenet_weights_where_present() -> None:
    from training.weights import WeightsError, resolve_lite_weights

    try:
        weights = resolve_lite_weights(None)
    except WeightsError as exc:
        pytest.skip(f"Lite0 weights not available here: {exc}")
    base = build_base("efficientnet_lite0", 64, weights_path=weights)
    assert not any("_se_" in layer.name for layer in base.layers)
    stem = base.get_layer("stem_conv").get_weights()[0]
    with np.load(weights) as saved:
        np.testing.assert_array_equal(stem, saved["stem_conv/0"])


def test_a_trained_run_becomes_an_artifact_that_inference_loads(
    trained_lite0: TrainedRun, tmp_path: Path
) -> None:
    dataset, config, split = trained_lite0.dataset, trained_lite0.config, trained_lite0.split
    artifact = tmp_path / "models" / "efficientnet_lite0"
    record = finalize(
        run_dir=trained_lite0.run_dir,
        config=config,
        dataset=dataset,
        split=split,
        artifact_dir=artifact,
        comparison_dir=tmp_path / "models" / "comparison" / "efficientnet_lite0",
        plots_dir=tmp_path / "models" / "plots",
        tta="off",
    )

    metadata = json.loads((artifact / "metadata.json").read_text())
    assert metadata["threshold"] == record["threshold"]["threshold"]
    assert metadata["dataset"]["manifest_sha256"] == dataset.fingerprint
    assert metadata["split"]["seed"] == config.seed
    assert "stand-in for EfficientNet-B0" in metadata["display_name"]
    assert (artifact / "split.csv").is_file()
    card = (artifact / "MODEL_CARD.md").read_text()
    assert "not a medical diagnosis" in card
    by_source = [group["roc_auc"] for group in record["test"]["by_group"].values()]
    assert f"test {np.mean(by_source):.3f}. This is the figure to expect" in card
    assert {"roc_auc", "sensitivity", "specificity", "ece"} <= set(
        metadata["test_metrics"]["overall"]
    )
    assert set(metadata["test_metrics"]["by_source"]) == {"small-source", "large-source"}
    # The held-out source is scored apart from test, at the threshold chosen without it.
    assert record["holdout_sources"] == ["unseen-source"]
    assert record["holdout"]["overall"]["n"] == len(split.holdout) == 8
    assert metadata["split"]["holdout_sources"] == ["unseen-source"]
    # The saved test logits give back both calibrations the record measured, as the report
    # redraws them.
    with np.load(tmp_path / "models" / "comparison" / "efficientnet_lite0" / SCORES_FILE) as saved:
        labels, logits = saved["labels"], saved["logits"]
    ece_before = expected_calibration_error(labels, sigmoid(logits))
    ece_after = expected_calibration_error(labels, apply_temperature(logits, record["temperature"]))
    assert ece_before == pytest.approx(record["calibration"]["test"]["ece_before"], abs=1e-9)
    assert ece_after == pytest.approx(record["calibration"]["test"]["ece_after"], abs=1e-9)

    # The input gate is fitted into the artifact, and what inference loads is what training
    # recorded.
    assert "## Input gate" in card
    assert "## A clinic never seen" in card
    gate_record = metadata["input_gate"]
    assert gate_record["real_images_turned_away"]["validation"]["images"] == len(split.validation)
    assert set(gate_record["real_images_turned_away"]) == {"validation", "test", "holdout"}

    classifier = load_classifier(artifact)
    assert classifier.gate is not None
    assert classifier.gate.limits() == pytest.approx(gate_record["limits"])
    image = dataset.samples[0].path
    by_path, by_bytes = classifier.predict([image, image.read_bytes()])
    assert by_path == by_bytes
    assert 0.0 <= by_path.probability <= 1.0
    assert by_path.high_risk == (
        by_path.probability >= metadata["threshold"] and by_path.gate_reason is None
    )
    assert by_path.model_version == metadata["version"]

    # A model file that no longer matches its recorded sha256 is refused.
    with (artifact / MODEL_FILE).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelArtifactError, match="sha256"):
        load_classifier(artifact)


def test_a_named_run_is_reported_beside_the_served_run_under_its_own_name(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    dataset = load_dataset(tiny_dataset)
    models = tmp_path / "models"
    for name in ("efficientnet_lite0", "efficientnet_lite0_trial"):
        served = name == "efficientnet_lite0"
        config = _smoke_config("efficientnet_lite0")
        # One phase each: the report, not the training, is under test, and each phase costs a
        # compilation.
        config = config.with_overrides(input_size=32 if served else 40, phases=config.phases[-1:])
        split = split_dataset(dataset, seed=config.seed)
        trained = train(config, split, tmp_path / name, weights_path=None)
        finalize(
            run_dir=tmp_path / name,
            config=trained.config,
            dataset=dataset,
            split=split,
            artifact_dir=models / name if served else None,
            comparison_dir=models / "comparison" / name,
            plots_dir=models / "plots",
            tta="off",
            run_name=name,
        )

    assert not (models / "efficientnet_lite0_trial").exists()
    assert (models / "plots" / "training_efficientnet_lite0_trial.png").is_file()
    # The report redraws each run's test plots from its saved record, without the model.
    per_run_plots = [
        models / "plots" / f"{kind}_{name}.png"
        for kind in ("reliability", "confusion")
        for name in ("efficientnet_lite0", "efficientnet_lite0_trial")
    ]
    for plot in per_run_plots:
        plot.unlink()
    report = write_report(models, command="python -m training compare").read_text()
    assert all(plot.is_file() for plot in per_run_plots)
    assert (
        "EfficientNet-Lite0 (ImageNet; stand-in for EfficientNet-B0) (efficientnet_lite0_trial)"
        in report
    )
    # "auto" is recorded as what it resolved to on this machine.
    assert report.count(f"precision {resolve_precision('auto')}") == 2
    assert "Input 40 px" in report
    assert "Input 32 px" in report
    # Where each run trained, since its training time means little without it.
    assert report.count(f"on {describe_training_device()}, precision") == 2


def test_a_larger_serving_size_is_measured_on_validation_and_served(
    trained_lite0: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from training import pipeline

    dataset, config, split = trained_lite0.dataset, trained_lite0.config, trained_lite0.split
    evaluate = functools.partial(
        finalize,
        run_dir=trained_lite0.run_dir,
        config=config,
        dataset=dataset,
        split=split,
        plots_dir=tmp_path / "models" / "plots",
        tta="off",
        # Off, so that the served weights can be compared with the trained ones below.
        head_refit="off",
    )

    # Widened so that a 32 px model has a larger candidate (64 px) to measure.
    monkeypatch.setattr(pipeline, "SERVING_SIZE_MAX_FACTOR", 2.0)
    auto = evaluate(artifact_dir=None, comparison_dir=tmp_path / "auto", serving_size="auto")
    assert set(auto["serving_size"]["validation_roc_auc_by_size"]) == {"32", "64"}
    assert auto["input_size"] in (32, 64)
    assert auto["training_input_size"] == 32
    # Chosen by the rule, on within-source figures that are those of the evaluation.
    gains = {
        int(size): WithinSourceGain(
            before=gain["before"], after=gain["after"], standard_error=gain["standard_error"]
        )
        for size, gain in auto["serving_size"]["validation_within_source_gain_by_size"].items()
    }
    assert auto["input_size"] == choose_serving_size(gains, 32)
    per_source = [group["roc_auc"] for group in auto["validation"]["by_group"].values()]
    assert gains[auto["input_size"]].after == pytest.approx(np.mean(per_source))
    # The model measured at the chosen size is the one that scores the test split.
    same = evaluate(
        artifact_dir=None,
        comparison_dir=tmp_path / "same",
        serving_size=str(auto["input_size"]),
    )
    assert same["test"]["overall"] == auto["test"]["overall"]

    artifact = tmp_path / "models" / "efficientnet_lite0"
    record = evaluate(artifact_dir=artifact, comparison_dir=tmp_path / "forced", serving_size="64")
    metadata = json.loads((artifact / "metadata.json").read_text())
    assert (record["input_size"], metadata["input_size"], metadata["training_input_size"]) == (
        64,
        64,
        32,
    )
    # The training config still retrains the model as it was trained.
    assert metadata["training_config"]["input_size"] == 32
    served = keras.models.load_model(artifact / MODEL_FILE, compile=False)
    assert served.input_shape == (None, 64, 64, 3)
    trained = keras.models.load_model(trained_lite0.run_dir / MODEL_FILE, compile=False)
    for mine, theirs in zip(served.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert "served at 64 px" in (artifact / "MODEL_CARD.md").read_text()

    prediction = load_classifier(artifact).predict([dataset.samples[0].path])[0]
    assert 0.0 <= prediction.probability <= 1.0


def test_a_mixed_precision_model_is_saved_as_a_float32_copy_with_its_weights() -> None:
    import keras

    from training.train import _as_float32, build_model

    config = _smoke_config("efficientnet_lite0", precision="mixed_bfloat16")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        _, mixed = build_model(config, weights_path=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    copy = _as_float32(mixed, config)

    assert mixed.get_layer("efficientnet_lite0").compute_dtype == "bfloat16"
    assert all(layer.compute_dtype == "float32" for layer in copy.layers)
    for mine, theirs in zip(copy.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_forced_tta_scores_validation_once_and_evaluates_with_flips(
    trained_lite0: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import pipeline

    scored: list[tuple[int, bool]] = []
    original = pipeline.predict_logits

    def counting(model: Any, samples: Sequence[Sample], *args: Any, **kwargs: Any) -> np.ndarray:
        scored.append((len(samples), bool(kwargs.get("tta"))))
        return original(model, samples, *args, **kwargs)

    monkeypatch.setattr(pipeline, "predict_logits", counting)
    split = trained_lite0.split
    record = finalize(
        run_dir=trained_lite0.run_dir,
        config=trained_lite0.config,
        dataset=trained_lite0.dataset,
        split=split,
        artifact_dir=None,
        comparison_dir=tmp_path / "comparison",
        plots_dir=tmp_path / "plots",
        tta="on",
        serving_size="train",
        head_refit="off",
    )

    tta = record["test_time_augmentation"]
    assert tta["used"]
    # The flips scored while deciding are the ones evaluated: validation is scored once.
    assert scored == [
        (len(split.validation), True),
        (len(split.test), True),
        (len(split.holdout), True),
    ]
    assert record["validation"]["overall"]["roc_auc"] == pytest.approx(
        tta["validation_roc_auc_with"]
    )


def _finalize_as_served(
    trained_lite0: TrainedRun, tmp_path: Path, split: Split | None = None, **options: str
) -> tuple[dict[str, Any], Path]:
    """Finalize the smoke run (on its own split unless `split` is given) into an artifact under
    `tmp_path`; its record and folder."""
    artifact = tmp_path / "models" / "efficientnet_lite0"
    record = finalize(
        run_dir=trained_lite0.run_dir,
        config=trained_lite0.config,
        dataset=trained_lite0.dataset,
        split=split or trained_lite0.split,
        artifact_dir=artifact,
        comparison_dir=tmp_path / "models" / "comparison" / "efficientnet_lite0",
        plots_dir=tmp_path / "models" / "plots",
        **{"tta": "off", "serving_size": "train", **options},
    )
    return record, artifact


def test_a_refitted_head_is_what_is_evaluated_and_served(
    trained_lite0: TrainedRun, tmp_path: Path
) -> None:
    import keras

    record, artifact = _finalize_as_served(trained_lite0, tmp_path, head_refit="on")

    refit = record["head_refit"]
    assert refit["used"]
    assert refit["decided_by"] == "forced on"
    assert float(refit["strength"]) in {float(s) for s in refit["validation_roc_auc_by_strength"]}
    # Validation is evaluated with the refitted layer, whose score chose its strength.
    assert record["validation"]["overall"]["roc_auc"] == pytest.approx(
        refit["validation_roc_auc_refit"]
    )
    assert json.loads((artifact / "metadata.json").read_text())["head_refit"] == refit
    trained = keras.models.load_model(trained_lite0.run_dir / MODEL_FILE, compile=False)
    served = keras.models.load_model(artifact / MODEL_FILE, compile=False)
    changed = [
        layer.name
        for layer in served.layers
        if any(
            not np.array_equal(mine, theirs)
            for mine, theirs in zip(
                layer.get_weights(), trained.get_layer(layer.name).get_weights(), strict=True
            )
        )
    ]
    assert changed == ["malignancy_logit"]


def test_a_resized_and_refitted_model_scores_each_split_once(
    trained_lite0: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from training import pipeline

    scored: list[int] = []
    original = pipeline.predict_logits

    def counting(model: Any, samples: Sequence[Sample], *args: Any, **kwargs: Any) -> np.ndarray:
        scored.append(len(samples))
        return original(model, samples, *args, **kwargs)

    monkeypatch.setattr(pipeline, "predict_logits", counting)
    record, _ = _finalize_as_served(trained_lite0, tmp_path, serving_size="64", head_refit="on")

    assert record["input_size"] == 64
    # Validation goes through the network once, for the refit's features, which both the
    # trained and the refitted layer score; test once, by the served model.
    assert scored == [len(trained_lite0.split.test), len(trained_lite0.split.holdout)]
    # The trained layer's score, taken from those features, is the trained model's own at 64 px.
    trained = keras.models.load_model(trained_lite0.run_dir / MODEL_FILE, compile=False)
    resized = resize_classifier(trained, trained_lite0.config.with_overrides(input_size=64))
    validation = subsample(
        trained_lite0.split.validation, trained_lite0.config.max_images_per_subset
    )
    logits = original(resized, validation, trained_lite0.config.preprocessing.at_size(64))
    assert record["head_refit"]["validation_roc_auc_trained"] == pytest.approx(
        roc_auc_score([s.label for s in validation], logits), abs=1e-6
    )


def test_a_head_refit_turned_off_leaves_the_trained_model(
    trained_lite0: TrainedRun, tmp_path: Path
) -> None:
    record, artifact = _finalize_as_served(trained_lite0, tmp_path, head_refit="off")

    assert record["head_refit"] == {"used": False, "decided_by": "turned off"}
    assert (artifact / MODEL_FILE).read_bytes() == (trained_lite0.run_dir / MODEL_FILE).read_bytes()
