"""The EfficientNet-Lite family's block tables, derived from B0's by Google's scaling rule.

Kept free of Keras so the weight converter (which must not import TensorFlow) and the model
builder read the same table. Lite0 is B0's table. Lite1 and Lite2 widen and deepen it with the
compound-scaling coefficients of Google's `efficientnet_lite_builder`, with the Lite changes:
the stem (32 channels) and head (1280) stay fixed, and the first and last stages keep one block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast, get_args

LiteVariant = Literal["lite0", "lite1", "lite2"]
LITE_VARIANTS: tuple[LiteVariant, ...] = get_args(LiteVariant)

STEM_FILTERS = 32
HEAD_FILTERS = 1280


def lite_variant(architecture: str) -> LiteVariant:
    """The Lite variant an architecture name stands for: "efficientnet_lite2" -> "lite2"."""
    variant = architecture.removeprefix("efficientnet_")
    if variant not in LITE_VARIANTS:
        raise ValueError(f"{architecture!r} is not an EfficientNet-Lite architecture")
    return cast(LiteVariant, variant)


def family_name(variant: LiteVariant) -> str:
    """How the variant is written for people: "lite2" -> "EfficientNet-Lite2"."""
    return "EfficientNet-" + variant.capitalize()


@dataclass(frozen=True)
class Scaling:
    width: float
    depth: float


SCALING: dict[LiteVariant, Scaling] = {
    "lite0": Scaling(width=1.0, depth=1.0),
    "lite1": Scaling(width=1.0, depth=1.1),
    "lite2": Scaling(width=1.1, depth=1.2),
}


@dataclass(frozen=True)
class StageArgs:
    kernel_size: int
    repeats: int
    filters_in: int
    filters_out: int
    expand_ratio: int
    strides: int


# EfficientNet-B0's stages: kernel, repeats, output filters, expand ratio, stride.
_B0_STAGES = (
    (3, 1, 16, 1, 1),
    (3, 2, 24, 6, 2),
    (5, 2, 40, 6, 2),
    (3, 3, 80, 6, 2),
    (5, 3, 112, 6, 1),
    (5, 4, 192, 6, 2),
    (3, 1, 320, 6, 1),
)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of 8, never down by more than 10%."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def stage_table(variant: LiteVariant) -> tuple[StageArgs, ...]:
    """The seven stages of a Lite variant, with channels and repeats scaled."""
    scaling = SCALING[variant]
    stages = []
    filters_in = STEM_FILTERS
    last = len(_B0_STAGES) - 1
    for index, (kernel, repeats, filters_out, expand, strides) in enumerate(_B0_STAGES):
        scaled_repeats = repeats if index in (0, last) else math.ceil(scaling.depth * repeats)
        scaled_out = round_filters(filters_out, scaling.width)
        stages.append(StageArgs(kernel, scaled_repeats, filters_in, scaled_out, expand, strides))
        filters_in = scaled_out
    return tuple(stages)


def block_prefixes(variant: LiteVariant) -> list[str]:
    """Name the blocks in order, as keras' EfficientNetB0 does: block1a, block2a, block2b, ..."""
    return [
        f"block{stage}{chr(ord('a') + index)}"
        for stage, args in enumerate(stage_table(variant), start=1)
        for index in range(args.repeats)
    ]
