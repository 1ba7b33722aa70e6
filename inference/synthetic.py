"""Deterministic, dermoscopy-like test images: for checking a backend, never for training.

Flat colours and white noise exercise a network far less than photographs do. These images
have what dermoscopy has: a skin-toned background with uneven lighting, an irregular pigmented
lesion with darker globules, a few hairs, a dark vignette and sensor noise.
"""

from __future__ import annotations

import numpy as np


def synthetic_lesion(seed: int, *, height: int = 256, width: int = 256) -> np.ndarray:
    """An (height, width, 3) uint8 image of a made-up pigmented lesion on skin."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    y = rows / max(height - 1, 1) * 2.0 - 1.0
    x = cols / max(width - 1, 1) * 2.0 - 1.0

    skin = rng.uniform([185.0, 120.0, 95.0], [235.0, 180.0, 150.0])
    light_angle = rng.uniform(0.0, 2.0 * np.pi)
    lighting = 1.0 + 0.12 * (np.cos(light_angle) * x + np.sin(light_angle) * y)
    image = skin[None, None, :] * lighting[..., None]

    # An irregular border: the lesion's radius wobbles with a few random harmonics.
    centre = rng.uniform(-0.25, 0.25, size=2)
    angle = np.arctan2(y - centre[1], x - centre[0])
    distance = np.hypot(x - centre[0], y - centre[1])
    radius = rng.uniform(0.3, 0.55) * np.ones_like(angle)
    for harmonic in range(2, 7):
        radius += rng.uniform(0.0, 0.06) * np.cos(harmonic * angle + rng.uniform(0, 2 * np.pi))
    inside = np.clip((radius - distance) / 0.05, 0.0, 1.0)
    pigment = rng.uniform([70.0, 40.0, 25.0], [150.0, 95.0, 70.0])
    core = np.clip(1.0 - distance / np.maximum(radius, 1e-6), 0.0, 1.0)[..., None]
    lesion = pigment[None, None, :] * (1.0 - 0.45 * core)
    image = image * (1.0 - inside[..., None]) + lesion * inside[..., None]

    for _ in range(rng.integers(5, 25)):
        gy, gx = centre[1] + rng.normal(0, 0.2), centre[0] + rng.normal(0, 0.2)
        size = rng.uniform(0.01, 0.04)
        globule = np.exp(-((x - gx) ** 2 + (y - gy) ** 2) / (2 * size**2))
        image *= 1.0 - 0.5 * (globule * inside)[..., None]

    for _ in range(rng.integers(0, 5)):
        slope, offset = rng.normal(0, 1.5), rng.uniform(-1, 1)
        hair = np.exp(-(((y - slope * x - offset) / np.hypot(1.0, slope)) ** 2) / 2e-5)
        image *= 1.0 - 0.7 * hair[..., None]

    vignette = np.clip(1.25 - 0.35 * (x**2 + y**2), 0.0, 1.0)
    image = image * vignette[..., None] + rng.normal(0.0, 4.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
