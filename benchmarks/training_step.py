"""Time one whole-network Lite0 training step per numeric precision, in one process.

Run from the repository root:

    python -m benchmarks.training_step [--input-size 224] [--batch-size 32] [--steps 24]

It builds the classifier (random weights: speed does not depend on them), unfreezes the whole
network as the "all" phase does, and fits it behind the training augmentation exactly as
`training.train` does, once per precision. The first epoch of each is a warm-up (tracing); the
figure is the median seconds per step of the timed epochs. This is what `--precision auto`
(training.hardware) decides on.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

if not __package__:
    raise SystemExit("run it from the repository root as: python -m benchmarks.training_step")

import keras
import numpy as np

from training.backbones import build_base, build_classifier
from training.hardware import PRECISIONS, cpu_flags, gpu_available, resolve_precision
from training.train import (
    TrainingAugmentation,
    build_augmentation,
    set_trainable,
    with_augmentation,
)


class _StepTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def seconds_per_step(precision: str, *, input_size: int, batch_size: int, steps: int) -> float:
    """Median wall seconds of one training step under `precision`, after a warm-up epoch."""
    keras.utils.set_random_seed(0)
    augmentation = TrainingAugmentation(build_augmentation("strong", seed=0))
    keras.mixed_precision.set_global_policy(precision)
    try:
        base = build_base("efficientnet_lite0", input_size, weights_path=None)
        model = build_classifier(
            base, architecture="efficientnet_lite0", dropout=0.3, hidden_units=0
        )
        set_trainable(base, "all", ())
        fitted = with_augmentation(model, augmentation)
        fitted.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (batch_size * steps, input_size, input_size, 3), np.uint8)
        targets = rng.integers(0, 2, (len(pixels), 1)).astype(np.float32)
        fitted.fit(pixels, targets, batch_size=batch_size, epochs=1, verbose=0)
        timer = _StepTimer()
        fitted.fit(pixels, targets, batch_size=batch_size, epochs=2, verbose=0, callbacks=[timer])
        return statistics.median(timer.seconds)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12, help="steps per timed epoch")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=None)
    args = parser.parse_args()
    has_gpu = gpu_available()
    precisions = args.precisions or (list(PRECISIONS) if has_gpu else ["float32", "mixed_bfloat16"])
    results = {
        precision: seconds_per_step(
            precision, input_size=args.input_size, batch_size=args.batch_size, steps=args.steps
        )
        for precision in precisions
    }
    baseline = results.get("float32")
    for precision, seconds in results.items():
        ratio = f"  {seconds / baseline:.2f}x float32" if baseline else ""
        print(f"{precision:>15}: {seconds:.3f} s/step{ratio}")
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "backend": keras.backend.backend(),
                "gpu": has_gpu,
                "cpu_flags": flags,
                "auto_chooses": resolve_precision("auto", has_gpu=has_gpu),
                "seconds_per_step": results,
            }
        )
    )


if __name__ == "__main__":
    main()
