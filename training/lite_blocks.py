"""EfficientNet-Lite0's block table: B0's stages, with the Lite stem and head.

Kept free of Keras so that the weight converter (which must not import TensorFlow) and the
model builder read the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

STEM_FILTERS = 32
HEAD_FILTERS = 1280


@dataclass(frozen=True)
class StageArgs:
    kernel_size: int
    repeats: int
    filters_in: int
    filters_out: int
    expand_ratio: int
    strides: int


# EfficientNet-B0's stages: kernel, repeats, input and output filters, expand ratio, stride.
STAGES = (
    StageArgs(3, 1, STEM_FILTERS, 16, 1, 1),
    StageArgs(3, 2, 16, 24, 6, 2),
    StageArgs(5, 2, 24, 40, 6, 2),
    StageArgs(3, 3, 40, 80, 6, 2),
    StageArgs(5, 3, 80, 112, 6, 1),
    StageArgs(5, 4, 112, 192, 6, 2),
    StageArgs(3, 1, 192, 320, 6, 1),
)


def block_prefixes() -> list[str]:
    """Name the blocks in order, as keras' EfficientNetB0 does: block1a, block2a, block2b, ..."""
    return [
        f"block{stage}{chr(ord('a') + index)}"
        for stage, args in enumerate(STAGES, start=1)
        for index in range(args.repeats)
    ]
