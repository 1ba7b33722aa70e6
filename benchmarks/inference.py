"""The served model's speed against `model.predict`, all in one process.

Run from the repository root:

    .venv/bin/python -m benchmarks.inference [--batch-sizes 1 16 64] [--json PATH]

It loads the model as the worker does (`load_classifier`: the GPU, LiteRT or Keras path, whichever
this machine serves) and, beside it, the same classifier with `model.predict` as its forward pass,
the baseline. On each batch size it times both on the same preprocessed batch, in turns; it
checks how closely the served probabilities follow the baseline's on dataset images; and it
times one upload of each size end to end both ways, with its decoding and resizing alone.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import statistics
import sys
from pathlib import Path
from typing import Any

if not __package__:
    # Run as a file, this script's folder comes first on sys.path and its own name shadows the
    # `inference` package it measures.
    raise SystemExit("run it from the repository root as: python -m benchmarks.inference")

import numpy as np
from PIL import Image

from benchmarks.report import inference_figures
from benchmarks.support import arguments, durations_s, finish, lesion_jpegs, machine
from inference.artifact import default_model_dir, verify_model_file
from inference.backends import interpreter_threads, load_keras_model, with_feature_maps
from inference.classifier import Classifier, load_classifier
from inference.synthetic import synthetic_lesion

UPLOAD_SIZES = ((256, 256), (1024, 768), (4032, 3024))
BUDGET_S = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "benchmarks.inference")
    parser.add_argument("--model", type=Path, default=None, help="artifact folder")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per case, at most")
    args = parser.parse_args(argv)

    started_on = machine()  # before loading, which would keep the CPU busy
    artifact_dir = args.model or default_model_dir()
    served = load_classifier(artifact_dir)
    metadata = served.metadata
    model_path = verify_model_file(artifact_dir, metadata)
    # The same outputs as the served path, the score and the feature maps its heatmap is drawn
    # from, so that both do the same work.
    model = with_feature_maps(load_keras_model(model_path))

    def predict(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, maps = model.predict(pixels.astype(np.float32), verbose=0)
        return np.asarray(logits), np.asarray(maps)

    baseline = Classifier(predict, metadata, kernel=served.head_kernel, backend="keras")
    report: dict[str, Any] = {
        "machine": started_on,
        "versions": versions(),
        "model": {
            "version": metadata.version,
            "input_size": metadata.input_size,
            "test_time_augmentation": metadata.test_time_augmentation,
            "model_file_mib": round(model_path.stat().st_size / 2**20, 2),
        },
        "backend": served.backend,
        "device": served.device,
        "threads": interpreter_threads() if served.backend == "tflite" else None,
    }
    report["forward"] = [
        time_forward(baseline, served, batch_size, repeats=args.repeats)
        for batch_size in args.batch_sizes
    ]
    report["agreement"] = agreement(baseline, served)
    report["upload"] = [
        time_upload(baseline, served, name, data, repeats=args.repeats)
        for name, data in upload_jpegs()
    ]
    finish(report, inference_figures, args.json)
    return 0


def time_forward(
    baseline: Classifier, served: Classifier, batch_size: int, *, repeats: int
) -> dict[str, Any]:
    """Both forward passes, every view the model asks for, on one batch of preprocessed pixels."""
    size = served.metadata.input_size
    pixels = np.stack([synthetic_lesion(seed, height=size, width=size) for seed in range(4)])
    batch = np.resize(pixels, (batch_size, size, size, 3))
    times = durations_s(
        {
            "baseline": functools.partial(baseline.analyse, batch),
            "served": functools.partial(served.analyse, batch),
        },
        budget_s=BUDGET_S,
        most=repeats,
    )
    ms = {name: statistics.median(t) * 1e3 / batch_size for name, t in times.items()}
    return {
        "batch_size": batch_size,
        "model_predict_ms_per_image": round(ms["baseline"], 3),
        "served_ms_per_image": round(ms["served"], 3),
        "served_images_per_s": round(1e3 / ms["served"], 1),
        "speedup": round(ms["baseline"] / ms["served"], 2),
        "repeats": len(times["served"]),
    }


def agreement(baseline: Classifier, served: Classifier) -> dict[str, Any]:
    """The largest difference between the served and the baseline calibrated probabilities."""
    jpegs, images = lesion_jpegs(24)
    pixels = served.preprocess(jpegs)
    difference = np.abs(served.probabilities(pixels) - baseline.probabilities(pixels))
    return {"images": images, "max_probability_difference": float(difference.max())}


def upload_jpegs() -> list[tuple[str, bytes]]:
    """Uploads as a browser would send them: a dataset image, and camera-sized photos of it."""
    source = Image.open(io.BytesIO(lesion_jpegs(1)[0][0])).convert("RGB")
    uploads = []
    for width, height in UPLOAD_SIZES:
        buffer = io.BytesIO()
        source.resize((width, height)).save(buffer, format="JPEG", quality=92)
        uploads.append((f"{width}x{height} JPEG", buffer.getvalue()))
    return uploads


def time_upload(
    baseline: Classifier, served: Classifier, name: str, data: bytes, *, repeats: int
) -> dict[str, Any]:
    """One upload scored end to end both ways, and its decoding and resizing alone."""
    times = durations_s(
        {
            "decode": functools.partial(served.preprocess, [data]),
            "baseline": functools.partial(baseline.predict, [data]),
            "served": functools.partial(served.predict, [data]),
        },
        budget_s=BUDGET_S,
        most=repeats,
    )
    ms = {key: statistics.median(t) * 1e3 for key, t in times.items()}
    return {
        "upload": name,
        "jpeg_kib": round(len(data) / 1024, 1),
        "decode_resize_ms": round(ms["decode"], 2),
        "model_predict_ms": round(ms["baseline"], 2),
        "served_ms": round(ms["served"], 2),
        "speedup": round(ms["baseline"] / ms["served"], 2),
        "decode_share_of_served": round(ms["decode"] / ms["served"], 3),
    }


def versions() -> dict[str, str]:
    """Versions of the packages a measured path uses."""
    found = {}
    for package in ("tensorflow", "keras", "ai-edge-litert", "numpy", "pillow"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


if __name__ == "__main__":
    sys.exit(main())
