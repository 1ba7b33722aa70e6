"""Training configuration, saved next to every artifact it produced."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

# Here rather than in training.backbones, so that the command line knows the names without
# importing Keras (seconds) just to print its help.
Architecture = Literal[
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_b0",
    "vgg16",
    "custom_cnn",
]
ARCHITECTURES: tuple[Architecture, ...] = get_args(Architecture)
# The EfficientNet-Lite architectures, each named after its variant in training.lite_variants.
LITE_ARCHITECTURES: tuple[Architecture, ...] = tuple(
    name for name in ARCHITECTURES if name.startswith("efficientnet_lite")
)
# Trained with the EfficientNet recipes; their artifacts are written under models/.
EFFICIENTNETS: tuple[Architecture, ...] = (*LITE_ARCHITECTURES, "efficientnet_b0")


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
    # Both sources are brought to this resolution before resizing (see inference.preprocessing).
    effective_resolution: int = 180
    seed: int = 42
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    batch_size: int = 32
    dropout: float = 0.3
    hidden_units: int = 0
    # "label_and_source": every (label, source) group weighs the same in the loss, so the source
    # says nothing about the label; "label": plain class weights.
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phases"] = [asdict(phase) for phase in self.phases]
        data["top_layer_prefixes"] = list(self.top_layer_prefixes)
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
        return cls(**values)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def with_overrides(self, **changes: Any) -> TrainingConfig:
        return replace(self, **changes)


RECIPES = ("full", "fast")
# How `finalize` refits the final layer (training.head_refit).
HEAD_REFIT_CHOICES = ("auto", "binary", "diagnosis", "off")


def default_config(architecture: Architecture, recipe: str = "full") -> TrainingConfig:
    """The recipe each architecture is compared with.

    EfficientNet has two: "full" trained the served model; "fast" fits 30 minutes on a 2-core
    AVX2-only CPU in float32, at some cost in validation AUC (times and metrics in
    models/report.md). The other architectures have one recipe.
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, not {recipe!r}")
    if architecture in EFFICIENTNETS and recipe == "fast":
        return TrainingConfig(
            architecture=architecture,
            # One whole-network epoch at 224 px costs about 2.7 minutes on that CPU. Fine-tuning
            # rates are low: at 2e-4 the first top-block epoch lost validation AUC (0.78 -> 0.77).
            input_size=224,
            head_on_cached_features=True,
            phases=(
                Phase(
                    "head", "head", epochs=20, learning_rate=1e-3, monitor="val_loss", patience=3
                ),
                Phase("top", "top", epochs=1, learning_rate=5e-5, monitor="val_auc", patience=1),
                Phase("all", "all", epochs=6, learning_rate=6e-5, monitor="val_auc", patience=3),
            ),
        )
    if architecture in EFFICIENTNETS:
        return TrainingConfig(
            architecture=architecture,
            # Larger than the native 224: the lesions' fine structure spans more of the
            # ImageNet-tuned receptive fields (measured: validation ROC AUC, see models/report.md).
            input_size=256,
            phases=(
                Phase("head", "head", epochs=5, learning_rate=1e-3, monitor="val_loss", patience=2),
                Phase("top", "top", epochs=3, learning_rate=2e-4, monitor="val_auc", patience=2),
                # Twenty whole-network epochs reached validation ROC AUC 0.850 and were still
                # gaining; thirty-two reached 0.862 (best epoch 27), at 1.65 min an epoch on a
                # 2-core Zen 4 CPU in float32.
                Phase("all", "all", epochs=32, learning_rate=1.2e-4, monitor="val_auc", patience=8),
            ),
        )
    if architecture == "vgg16":
        return TrainingConfig(
            architecture="vgg16",
            input_size=128,
            effective_resolution=180,
            hidden_units=256,
            top_layer_prefixes=("block5",),
            head_on_cached_features=True,
            phases=(
                Phase(
                    "head", "head", epochs=20, learning_rate=1e-3, monitor="val_loss", patience=3
                ),
                Phase("top", "top", epochs=3, learning_rate=5e-5, monitor="val_auc", patience=2),
            ),
        )
    if architecture == "custom_cnn":
        return TrainingConfig(
            architecture="custom_cnn",
            input_size=128,
            effective_resolution=180,
            dropout=0.4,
            # Learning from scratch is slow enough without colour jitter on top.
            augmentation="basic",
            phases=(
                # From scratch, validation AUC wanders near 0.55 for the first epochs while the
                # loss falls: with patience 5 a run stopped after six epochs on an epoch-1 fluke.
                Phase(
                    "scratch",
                    "scratch",
                    epochs=25,
                    learning_rate=1e-3,
                    monitor="val_auc",
                    patience=8,
                ),
            ),
        )
    raise ValueError(f"no default recipe for {architecture!r}")
