"""Training configuration, saved next to every artifact it produced."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from inference.preprocessing import Preprocessing
from training.data import Sample

# Here rather than in training.backbones, so that the command line knows the names without
# importing Keras (seconds) just to print its help.
Architecture = Literal[
    "efficientnet_lite0",
    "efficientnet_b0",
    "vgg16",
    "custom_cnn",
]
ARCHITECTURES: tuple[Architecture, ...] = get_args(Architecture)
# Trained with the EfficientNet recipe; their artifacts are written under models/.
EFFICIENTNETS: tuple[Architecture, ...] = ("efficientnet_lite0", "efficientnet_b0")


@dataclass(frozen=True)
class Phase:
    """One stage of training: which layers learn, for how long, at what rate."""

    name: str
    # "head"; "top" (top blocks + head); "all" (BatchNorm stays frozen); "scratch" (everything)
    trainable: str
    epochs: int
    learning_rate: float
    monitor: str = "val_loss"
    patience: int = 3


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what a training run produces."""

    architecture: Architecture = "efficientnet_lite0"
    input_size: int = 224
    # Every source is brought to this resolution before resizing (see inference.preprocessing).
    effective_resolution: int = 180
    # "shades_of_grey" divides out the light's colour first (inference.preprocessing).
    colour_constancy: str = "none"
    seed: int = 42
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    # Whole sources kept out of training and of every choice (training.data.split_dataset):
    # scored after training as a clinic never seen. Other clinics and cameras than the rest,
    # and every diagnosis.
    holdout_sources: tuple[str, ...] = ("ham-isic2018-448px",)
    # Sources whose training images are left out of training; they are still validated and
    # tested on.
    untrained_sources: tuple[str, ...] = ()
    batch_size: int = 32
    dropout: float = 0.3
    hidden_units: int = 0
    # How the loss weighs images (training.data.BALANCES).
    balance: str = "label_and_source"
    augmentation: str = "strong"  # "basic": flips, rotation, zoom; "strong": + colour jitter
    # Stages whose names start with these are unfrozen in the "top" phase.
    top_layer_prefixes: tuple[str, ...] = ("block6", "block7", "top_")
    phases: tuple[Phase, ...] = field(default_factory=tuple)
    target_sensitivity: float = 0.95
    test_time_augmentation: bool = False
    # "auto" is mixed float16 on a GPU and float32 on a CPU, where mixed bfloat16 was measured
    # slower (see training.hardware); the saved model is always rebuilt in float32.
    precision: str = "auto"
    # The frozen-base phase trains the head on backbone features computed once (one augmented
    # view per image): on a CPU, seconds instead of minutes per epoch.
    head_on_cached_features: bool = False
    weights_path: str | None = None
    # Caps the images used per subset; for smoke tests on tiny data, never for a real model.
    max_images_per_subset: int | None = None

    @property
    def preprocessing(self) -> Preprocessing:
        """How images are prepared for this model, in training and in the served artifact."""
        return Preprocessing(
            input_size=self.input_size,
            effective_resolution=self.effective_resolution,
            colour_constancy=self.colour_constancy,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phases"] = [asdict(phase) for phase in self.phases]
        data["top_layer_prefixes"] = list(self.top_layer_prefixes)
        data["holdout_sources"] = list(self.holdout_sources)
        data["untrained_sources"] = list(self.untrained_sources)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        values = dict(data)
        values["phases"] = tuple(Phase(**phase) for phase in data.get("phases", ()))
        values["top_layer_prefixes"] = tuple(data.get("top_layer_prefixes", ()))
        values["holdout_sources"] = tuple(data.get("holdout_sources", ()))
        values["untrained_sources"] = tuple(data.get("untrained_sources", ()))
        return cls(**values)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def training_images(self, samples: tuple[Sample, ...]) -> tuple[Sample, ...]:
        """The training subset's images this configuration trains on."""
        return tuple(s for s in samples if s.source not in self.untrained_sources)

    def with_overrides(self, **changes: Any) -> TrainingConfig:
        return replace(self, **changes)


# What the recipes' phases stop on and keep the best epoch of: the mean ROC AUC within each
# validation source (training.train.WithinSourceValidation), not the pooled one.
WITHIN = "val_within_source_auc"
# How `finalize` refits the final layer (training.head_refit).
HEAD_REFIT_CHOICES = ("auto", "on", "off")


def default_config(architecture: Architecture) -> TrainingConfig:
    """The recipe each architecture is trained and compared with."""
    if architecture in EFFICIENTNETS:
        # Every choice below was made on the held-out source and the within-source validation
        # figures, never the pooled one (docs/experiments.md).
        return TrainingConfig(
            architecture=architecture,
            input_size=224,
            effective_resolution=224,
            balance="label_and_source_sqrt",
            # Its few dozen malignant training images, weighted up to balance thousands of
            # benign ones, cost within-source validation ROC AUC; its images are still validated
            # and tested on.
            untrained_sources=("isic2020-288px",),
            head_on_cached_features=True,
            phases=(
                Phase("head", "head", epochs=15, learning_rate=1e-3, monitor=WITHIN, patience=3),
                Phase("all", "all", epochs=8, learning_rate=1e-4, monitor=WITHIN, patience=4),
            ),
        )
    # The comparison models learn from the same images, weighted the same way, and stop on the
    # same within-source figure as EfficientNet; they train at 128 px to fit the CPU.
    if architecture == "vgg16":
        return TrainingConfig(
            architecture="vgg16",
            input_size=128,
            effective_resolution=180,
            hidden_units=256,
            balance="label_and_source_sqrt",
            untrained_sources=("isic2020-288px",),
            top_layer_prefixes=("block5",),
            head_on_cached_features=True,
            phases=(
                Phase("head", "head", epochs=20, learning_rate=1e-3, monitor=WITHIN, patience=3),
                Phase("top", "top", epochs=3, learning_rate=5e-5, monitor=WITHIN, patience=2),
            ),
        )
    if architecture == "custom_cnn":
        return TrainingConfig(
            architecture="custom_cnn",
            input_size=128,
            effective_resolution=180,
            dropout=0.4,
            balance="label_and_source_sqrt",
            untrained_sources=("isic2020-288px",),
            # Learning from scratch is slow enough without colour jitter on top.
            augmentation="basic",
            phases=(
                # About as many steps as it had on the first data folder alone, four times
                # smaller; from scratch its validation figure wanders for the first epochs.
                Phase(
                    "scratch", "scratch", epochs=8, learning_rate=1e-3, monitor=WITHIN, patience=4
                ),
            ),
        )
    raise ValueError(f"no default recipe for {architecture!r}")
