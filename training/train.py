"""Train one architecture in phases and save the model with its raw validation/test logits.

Calibration, threshold choice and evaluation happen afterwards (training.pipeline), from the
saved logits, so they can be re-run without retraining.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from training import evaluation
from training.backbones import POOL_LAYER, build_base, build_classifier
from training.batches import ImageBatches, predict_logits, predict_rows
from training.config import WITHIN as WITHIN_SOURCE_MONITOR
from training.config import Phase, TrainingConfig
from training.data import Sample, Split, balanced_sample_weights, subsample
from training.hardware import describe_training_device, resolve_precision

MODEL_FILE = "model.keras"
LOGITS_FILE = "logits.npz"
HISTORY_FILE = "history.json"


@dataclass
class TrainingResult:
    """What a training run leaves behind, in memory and on disk under `output_dir`."""

    output_dir: Path
    # As trained: "auto" settings resolved to what this machine used.
    config: TrainingConfig
    model: keras.Model
    history: dict[str, list[float]]
    phase_boundaries: list[int]
    seconds: float


def build_augmentation(kind: str, seed: int) -> keras.Sequential:
    """Random geometry (and colour, for "strong") applied to training batches only."""
    steps: list[keras.layers.Layer] = [
        # A lesion seen through a dermatoscope has no up or left: every rotation and flip is
        # as plausible as the original.
        keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
        keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomZoom((-0.2, 0.1), fill_mode="reflect", seed=seed + 2),
    ]
    if kind == "strong":
        # Cameras and lighting differ between clinics; colour jitter keeps the model from
        # leaning on one device's colour balance.
        steps += [
            keras.layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4),
            keras.layers.RandomContrast(0.2, seed=seed + 5),
            keras.layers.RandomSaturation((0.35, 0.65), seed=seed + 6),
            keras.layers.RandomHue(0.03, value_range=(0, 255), seed=seed + 7),
        ]
    elif kind != "basic":
        raise ValueError(f"augmentation must be 'basic' or 'strong', not {kind!r}")
    if keras.backend.backend() == "jax":
        # Keras's rotation, zoom and translation layers declare themselves unfit for XLA because
        # TensorFlow's image-transform op has no XLA kernel, and one such layer turns
        # compilation off for the whole training model. On JAX their ops are plain jax.numpy,
        # which compiles. Uncompiled, every operation of a step was dispatched from Python one
        # by one: about 650 ms a step on an H200 whatever the input size, against 15 to 65 ms
        # compiled (whole network, 320 to 448 px, three runs sharing the GPU).
        for step in steps:
            step.supports_jit = True
    return keras.Sequential(steps, name="augmentation")


class TrainingAugmentation(keras.layers.Layer):
    """Casts pixels to float32 and, in training, augments them and clips back to 0..255.

    It sits in front of the classifier only while fitting (see `with_augmentation`), so the
    augmentation runs inside the compiled training step on whichever Keras backend trains, and
    the saved classifier never contains it.
    """

    def __init__(self, augmentation: keras.Sequential, **kwargs: Any) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.augmentation = augmentation

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.augmentation.build(input_shape)

    def call(self, images: Any, training: bool | None = None) -> Any:
        images = keras.ops.cast(images, "float32")
        if not training:
            return images
        return keras.ops.clip(self.augmentation(images, training=True), 0.0, 255.0)


class NoisyFeatures(keras.layers.Layer):
    """The backbone's training-time output for an augmented view, for `predict` to compile."""

    def __init__(self, augmentation: TrainingAugmentation, base: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        self.augmentation = augmentation
        self.base = base

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.augmentation.build(input_shape)

    def call(self, images: Any) -> Any:
        return self.base(self.augmentation(images, training=True), training=True)


def with_augmentation(model: keras.Model, augmentation: TrainingAugmentation) -> keras.Model:
    """`model` behind the augmentation, sharing its layers: fitting this fits `model`."""
    # uint8 in: the training pixels stay a quarter of their float32 size until each batch.
    pixels = keras.Input(model.inputs[0].shape[1:], dtype="uint8", name="pixels")
    return keras.Model(pixels, model(augmentation(pixels)), name=f"{model.name}_training")


def set_trainable(base: keras.Model, mode: str, top_prefixes: tuple[str, ...]) -> None:
    """Freeze or unfreeze the backbone for a phase."""
    if mode == "head":
        base.trainable = False
        return
    base.trainable = True
    for layer in base.layers:
        if mode == "top":
            layer.trainable = layer.name.startswith(top_prefixes)
        # Pretrained BatchNorm statistics are kept: small batches of one domain would otherwise
        # overwrite ImageNet's and the fine-tuned network degrades (keras-io's advice).
        if mode in ("top", "all") and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _compile(model: keras.Model, phase: Phase, steps_per_epoch: int) -> None:
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = phase.learning_rate
    if phase.trainable != "head":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            phase.learning_rate, decay_steps=max(1, phase.epochs * steps_per_epoch), alpha=0.1
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.AUC(from_logits=True, name="auc"),
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
            keras.metrics.Recall(thresholds=0.0, name="recall"),
            keras.metrics.Precision(thresholds=0.0, name="precision"),
        ],
    )


def train(
    config: TrainingConfig, split: Split, output_dir: Path, *, weights_path: Path | None
) -> TrainingResult:
    """Train `config.architecture` on `split`; write model, logits and history to `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    config = config.with_overrides(precision=resolve_precision(config.precision))
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()

    subsets = {
        name: subsample(split.subset(name), config.max_images_per_subset)
        for name in ("train", *split.evaluated_subsets)
    }
    subsets["train"] = config.training_images(subsets["train"])
    print(
        f"[{config.architecture}] images: "
        + ", ".join(f"{name} {len(samples)}" for name, samples in subsets.items())
        + f" (streamed from disk; precision {config.precision})",
        flush=True,
    )

    # Built before the precision policy is set: augmentation stays in float32.
    augmentation = TrainingAugmentation(
        build_augmentation(config.augmentation, config.seed), name="augmentation"
    )
    weights = balanced_sample_weights(subsets["train"], balance=config.balance)
    image_data = FitData(
        train=_batches(subsets["train"], config, sample_weights=weights, shuffle=True),
        validation=_batches(subsets["validation"], config),
        validation_sources=np.array([s.source for s in subsets["validation"]]),
    )
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        base, model = build_model(config, weights_path)

        def head_data() -> FitData:
            return _cached_feature_data(base, augmentation, subsets, weights, config)

        history, boundaries = _fit_phases(
            config,
            base,
            model,
            augmentation,
            image_data,
            head_data=head_data if config.head_on_cached_features else None,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    seconds = time.perf_counter() - started
    inference_model = _as_float32(model, config)
    inference_model.save(output_dir / MODEL_FILE)
    saved: dict[str, np.ndarray] = {}
    for name in split.evaluated_subsets:
        samples = subsets[name]
        saved[f"{name}_logits"] = predict_logits(
            inference_model, samples, config.preprocessing, tta=config.test_time_augmentation
        )
        saved[f"{name}_labels"] = np.array([s.label for s in samples])
        saved[f"{name}_files"] = np.array([s.file for s in samples])
        saved[f"{name}_sources"] = np.array([s.source for s in samples])
    np.savez(output_dir / LOGITS_FILE, **saved)  # type: ignore[arg-type]
    record: dict[str, Any] = {
        "history": history,
        "phase_boundaries": boundaries[:-1],
        "training_seconds": seconds,
        "trained_on": describe_training_device(),
    }
    (output_dir / HISTORY_FILE).write_text(json.dumps(record, indent=2) + "\n")
    config.save(output_dir / "training_config.json")
    print(f"[{config.architecture}] trained in {seconds / 60:.1f} min", flush=True)
    return TrainingResult(output_dir, config, inference_model, history, boundaries[:-1], seconds)


def build_model(
    config: TrainingConfig, weights_path: Path | None
) -> tuple[keras.Model, keras.Model]:
    """The backbone and the classifier on it, as `config` trains them; random weights where no
    ImageNet weights path is given."""
    base = build_base(config.architecture, config.input_size, weights_path=weights_path)
    model = build_classifier(
        base,
        architecture=config.architecture,
        dropout=config.dropout,
        hidden_units=config.hidden_units,
    )
    return base, model


def _head_model(model: keras.Model) -> keras.Model:
    """The classifier's layers after its pooling (shared, not copied), on pooled features."""
    pool = model.get_layer(POOL_LAYER)
    features = keras.Input(pool.output.shape[1:], name="pooled_features")
    x = features
    for layer in model.layers[model.layers.index(pool) + 1 :]:
        x = layer(x)
    return keras.Model(features, x, name="head")


@dataclass(frozen=True)
class FitData:
    """What one `fit` trains and validates on: images streamed in batches (with targets and
    loss weights), or arrays of features held in memory as (inputs, targets[, weights])."""

    train: ImageBatches | tuple[np.ndarray, np.ndarray, np.ndarray]
    validation: ImageBatches | tuple[np.ndarray, np.ndarray]
    validation_sources: np.ndarray

    def steps_per_epoch(self, batch_size: int) -> int:
        if isinstance(self.train, ImageBatches):
            return len(self.train)
        return int(np.ceil(len(self.train[0]) / batch_size))


def _batches(
    samples: tuple[Sample, ...],
    config: TrainingConfig,
    *,
    sample_weights: np.ndarray | None = None,
    shuffle: bool = False,
    with_targets: bool = True,
) -> ImageBatches:
    return ImageBatches(
        samples,
        config.preprocessing,
        batch_size=config.batch_size,
        with_targets=with_targets,
        sample_weights=sample_weights,
        shuffle_seed=config.seed if shuffle else None,
    )


def _targets(samples: tuple[Sample, ...]) -> np.ndarray:
    return np.array([[s.label] for s in samples], dtype=np.float32)


def _cached_feature_data(
    base: keras.Model,
    augmentation: TrainingAugmentation,
    subsets: dict[str, tuple[Sample, ...]],
    weights: np.ndarray,
    config: TrainingConfig,
) -> FitData:
    """Frozen-backbone features: one augmented view per training image, validation as is.

    The training view goes through the augmentation and the backbone's own training-time noise
    (stochastic depth; BatchNorm stays frozen), so the head learns on the kind of features the
    later phases feed it rather than on cleaner ones it will never see again.
    """
    # Pooled, as the head takes them: a few kilobytes an image, where the backbone's feature
    # maps would hold hundreds.
    pool = keras.layers.GlobalAveragePooling2D()
    noisy = keras.Sequential([NoisyFeatures(augmentation, base), pool], name="noisy_features")
    if keras.backend.backend() == "jax":
        # Predicted under JAX, the augmented view's features lost most of what they say about
        # the label (a logistic regression on them ranked validation far below one on clean
        # features, while under TensorFlow the two match): the head learns on clean ones there.
        noisy = keras.Sequential([base, pool], name="clean_training_features")
    # The backbone alone, not behind the augmentation layer: Keras on JAX ran that layer in
    # training mode when predicting from a PyDataset, augmenting what should be clean.
    clean = keras.Sequential([base, pool], name="clean_features")
    return FitData(
        train=(
            predict_rows(noisy, _batches(subsets["train"], config, with_targets=False)),
            _targets(subsets["train"]),
            weights,
        ),
        validation=(
            predict_rows(clean, _batches(subsets["validation"], config, with_targets=False)),
            _targets(subsets["validation"]),
        ),
        validation_sources=np.array([s.source for s in subsets["validation"]]),
    )


class WithinSourceValidation(keras.callbacks.Callback):
    """Scores validation after every epoch and logs, beside the pooled `val_auc` and `val_loss`,
    `val_within_source_auc`: the mean ROC AUC within each source with enough images of both
    labels (training.evaluation.source_balanced_roc_auc).

    Epochs are chosen on it rather than on the pooled figure, which also rewards ranking one
    source's images above another's: telling cameras apart instead of lesions.
    """

    def __init__(
        self,
        scorer: keras.Model,
        validation: ImageBatches | tuple[np.ndarray, np.ndarray],
        sources: np.ndarray,
    ) -> None:
        super().__init__()
        # The model being fitted without the augmentation in front of it (its layers are
        # shared): Keras on JAX ran that layer in training mode when predicting from a PyDataset.
        self.scorer = scorer
        if isinstance(validation, ImageBatches):
            self.inputs: Any = validation
            self.labels = validation.targets[:, 0].astype(np.int64)
        else:
            self.inputs, targets = validation
            self.labels = targets[:, 0].astype(np.int64)
        self.sources = sources

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if isinstance(self.inputs, ImageBatches):
            outputs = predict_rows(self.scorer, self.inputs)
        else:
            outputs = self.scorer.predict(self.inputs, verbose=0)
        logits = np.asarray(outputs, np.float64).reshape(-1)
        if logs is None:
            return
        logs["val_loss"] = evaluation.binary_cross_entropy(self.labels, logits)
        logs["val_auc"] = float(roc_auc_score(self.labels, logits))
        try:
            within = evaluation.source_balanced_roc_auc(
                self.labels, logits, self.sources, min_per_label=evaluation.MIN_PER_LABEL_WITHIN
            )
        except ValueError:
            # Too few images for any source to count (a smoke run): every source with both.
            within = evaluation.source_balanced_roc_auc(self.labels, logits, self.sources)
        logs[WITHIN_SOURCE_MONITOR] = within


def _fit_phases(
    config: TrainingConfig,
    base: keras.Model,
    model: keras.Model,
    augmentation: TrainingAugmentation,
    image_data: FitData,
    *,
    head_data: Callable[[], FitData] | None = None,
) -> tuple[dict[str, list[float]], list[int]]:

    history: dict[str, list[float]] = {}
    boundaries: list[int] = []
    steps_per_epoch = image_data.steps_per_epoch(config.batch_size)
    for phase in config.phases:
        set_trainable(base, phase.trainable, config.top_layer_prefixes)
        print(f"[{config.architecture}] phase {phase.name}: {phase}", flush=True)
        if phase.trainable == "head" and head_data is not None:
            # The base is frozen: compute its features once and train only the head on them.
            fitted, data = _head_model(model), head_data()
            scorer = fitted
        else:
            fitted, data = with_augmentation(model, augmentation), image_data
            scorer = model
        _compile(fitted, phase, steps_per_epoch)
        mode = "min" if phase.monitor.endswith("loss") else "max"
        if isinstance(data.train, ImageBatches):
            arguments: dict[str, Any] = {"x": data.train}
        else:
            inputs, targets, sample_weights = data.train
            arguments = {
                "x": inputs,
                "y": targets,
                "sample_weight": sample_weights,
                "batch_size": config.batch_size,
                "shuffle": True,
            }
        callbacks: list[keras.callbacks.Callback] = []
        validation_data: Any = data.validation
        if phase.monitor == WITHIN_SOURCE_MONITOR:
            # Scores validation itself, so Keras's own validation pass would only repeat it.
            callbacks.append(
                WithinSourceValidation(scorer, data.validation, data.validation_sources)
            )
            validation_data = None
        fit = fitted.fit(
            **arguments,
            validation_data=validation_data,
            epochs=phase.epochs,
            callbacks=[
                *callbacks,
                keras.callbacks.EarlyStopping(
                    monitor=phase.monitor,
                    mode=mode,
                    patience=phase.patience,
                    restore_best_weights=True,
                ),
            ],
            verbose=1,
        )
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        boundaries.append(len(history.get("loss", [])))

    return history, boundaries


def resize_classifier(model: keras.Model, config: TrainingConfig) -> keras.Model:
    """`model`'s weights in a float32 classifier built for `config.input_size`.

    Every architecture here is convolutional up to a global pooling, so its weights fit any
    input size.
    """
    _, resized = build_model(config, weights_path=None)
    resized.set_weights(model.get_weights())
    return resized


def _as_float32(model: keras.Model, config: TrainingConfig) -> keras.Model:
    """An uncompiled float32 copy: no optimizer state in the file, no bf16 at inference."""
    if config.precision == "float32":
        return keras.Model(model.inputs, model.outputs, name=model.name)
    # Rebuilt under the float32 policy (set back by `train`) at the same size.
    return resize_classifier(model, config)
