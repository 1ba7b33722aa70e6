"""Where in an image the score came from: class activation maps, drawn as an overlay.

Every served model ends in global average pooling and one linear unit, so the logit is the mean
over positions of `feature_map @ kernel` plus a bias. That per-position sum is the class
activation map; for such a head it is also exactly what Grad-CAM computes (the gradient of the
logit with respect to each feature is the kernel divided by the number of positions), without
a backward pass. It comes out of the same forward pass as the score.

The map shows how strongly each position moved the logit, in either direction. Grad-CAM keeps
only the positions that favour the predicted label, but a lesion on plain skin can weigh against
malignancy while the skin around it tips the score: keeping one sign then lights up the skin,
keeping the magnitude lights up the lesion, which is where a reviewer should look.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Longest side of the stored overlay: the viewer stretches it over the image, and the map
# itself has only a few cells per side.
OVERLAY_MAX_SIDE = 256


def activation_maps(feature_maps: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(N, h, w) maps in 0..1 from (N, h, w, C) feature maps and the head's (C,) kernel: each
    position's contribution to the logit, as a magnitude, scaled by the map's own maximum, so it
    says where, not how much."""
    raw = np.abs(np.tensordot(feature_maps, kernel, axes=([3], [0])))
    peaks = raw.reshape(len(raw), -1).max(axis=1, initial=0.0)
    scale = np.where(peaks > 0, peaks, 1.0)
    return (raw / scale[:, None, None]).astype(np.float32)


def _colour_ramp(values: np.ndarray) -> np.ndarray:
    """A yellow-to-red ramp for 0..1 values, as (..., 3) uint8."""
    red = np.full_like(values, 255.0)
    green = 230.0 * (1.0 - values)
    blue = 40.0 * (1.0 - values)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def overlay_png(heatmap: np.ndarray, *, width: int, height: int) -> bytes:
    """An RGBA PNG of `heatmap` stretched to the image's aspect ratio: colour and opacity grow
    with the map, so cool areas stay see-through. The model sees the image squashed to a
    square, so stretching the map back puts each cell over the part of the image it saw."""
    scale = OVERLAY_MAX_SIDE / max(width, height, 1)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = Image.fromarray((np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8), mode="L")
    values = np.asarray(grey.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    rgba = np.concatenate(
        [_colour_ramp(values), (values * 200).astype(np.uint8)[..., None]], axis=-1
    )
    buffer = io.BytesIO()
    # zlib's fastest level: the worker draws one overlay per scored image on the CPU that also
    # runs the model, and a smooth map this small compresses well enough at any level.
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
