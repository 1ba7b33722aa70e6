"""Images streamed from disk in batches, for fitting and scoring.

Only the batches in flight are ever decoded, so memory does not grow with the data: the whole
pipeline runs on as many images as the disk holds. Each batch is decoded by the artifact's
`inference.preprocessing.Preprocessing`, the serving path's own, on every core this process may
use, while Keras's worker threads prefetch the next batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from inference.preprocessing import Preprocessing, flip_views
from training.data import Sample

# Batches decoded ahead of the one being fitted or scored.
PREFETCH_WORKERS = 2


class ImageBatches(keras.utils.PyDataset):
    """`samples` as batches of uint8 pixels, with targets and loss weights where given.

    With `shuffle_seed`, the order is reshuffled before every epoch (a new order per epoch,
    the same sequence of orders for the same seed); without, batches follow `samples`.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        preprocessing: Preprocessing,
        *,
        batch_size: int,
        with_targets: bool = False,
        sample_weights: np.ndarray | None = None,
        shuffle_seed: int | None = None,
    ) -> None:
        super().__init__(workers=PREFETCH_WORKERS, use_multiprocessing=False)
        if not samples:
            raise ValueError("no images to stream")
        self.paths = [sample.path for sample in samples]
        self.targets = np.array([[sample.label] for sample in samples], dtype=np.float32)
        self.sample_weights = sample_weights
        self.with_targets = with_targets or sample_weights is not None
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self._rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
        self._order = np.arange(len(self.paths))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        if index >= len(self):
            raise IndexError(index)
        chosen = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        pixels = self.preprocessing.batch([self.paths[i] for i in chosen])
        if not self.with_targets:
            return (pixels,)
        if self.sample_weights is None:
            return pixels, self.targets[chosen]
        return pixels, self.targets[chosen], self.sample_weights[chosen]

    def on_epoch_end(self) -> None:
        if self._rng is not None:
            self._order = self._rng.permutation(len(self.paths))


def predict_rows(model: keras.Model, batches: ImageBatches) -> np.ndarray:
    """`model`'s outputs for every image of `batches`, in order: one row per image.

    Under JAX, Keras pads a short last batch to the full batch size and returns the padding's
    rows too; they come after the real ones and are dropped here.
    """
    outputs = np.asarray(model.predict(batches, verbose=0))
    if len(outputs) < len(batches.paths):
        raise RuntimeError(f"{len(outputs)} outputs for {len(batches.paths)} images")
    return outputs[: len(batches.paths)]


def predict_logits(
    model: keras.Model,
    samples: Sequence[Sample],
    preprocessing: Preprocessing,
    *,
    batch_size: int = 64,
    tta: bool = False,
) -> np.ndarray:
    """Raw logits for `samples`, streamed; with `tta`, the mean over the serving path's
    `flip_views`."""
    batches = ImageBatches(samples, preprocessing, batch_size=batch_size)
    if not tta:
        return predict_rows(model, batches).astype(np.float64).reshape(-1)
    logits = []
    for index in range(len(batches)):
        (pixels,) = batches[index]
        views = [model.predict_on_batch(view.astype(np.float32)) for view in flip_views(pixels)]
        logits.append(np.mean(np.asarray(views, dtype=np.float64).reshape(4, -1), axis=0))
    return np.concatenate(logits)
