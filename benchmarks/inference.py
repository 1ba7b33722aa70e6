"""The served model's speed against the naive way of running it, all in one process.

Run from the repository root:

    .venv/bin/python -m benchmarks.inference [--model DIR] [--json PATH]

It times the forward pass three ways on each batch size: `model.predict` per call (the
baseline), the traced Keras call (the backend served when LiteRT is unavailable) and the LiteRT
interpreter as served on a CPU; on a machine with a GPU, the GPU path as served there too. It
checks how closely each reproduces the Keras model's probabilities;
splits scoring one upload into decoding plus resizing and the forward pass; and times one
upload end to end each way. Absolute figures depend on the machine and on whatever else runs on
it; the ratios, measured in the same run, are what to compare.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib.metadata
import io
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

if not __package__:
    # Run as a file, this script's folder comes first on sys.path and its own name shadows the
    # `inference` package it measures.
    raise SystemExit("run it from the repository root as: python -m benchmarks.inference")

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.report import inference_figures
from benchmarks.support import json_write, load_average, machine
from inference.artifact import ModelMetadata, default_model_dir, read_metadata, verify_model_file
from inference.backends import (
    FlatbufferCache,
    Forward,
    cache_root,
    gpu_names,
    head_kernel,
    interpreter_threads,
    keras_forward,
    load_keras_model,
    max_probability_difference,
    tflite_forward,
    verified_gpu_forward,
    with_feature_maps,
)
from inference.classifier import Classifier
from inference.preprocessing import prepare_batch
from inference.synthetic import synthetic_lesion
from training.data import default_data_dir

NAIVE = "keras model.predict"
TRACED = "keras traced call"
SERVED = "litert (served)"
GPU = "gpu (served where one is)"
UPLOAD_SIZES = ((256, 256), (1024, 768), (4032, 3024))


@dataclass
class ForwardTiming:
    path: str
    batch_size: int
    median_ms_per_image: float
    images_per_s: float
    speedup_vs_naive: float
    best_ms_per_image: float
    best_speedup_vs_naive: float
    repeats: int


@dataclass
class UploadTiming:
    upload: str
    jpeg_kib: float
    decode_resize_ms: float
    forward_ms: float
    decode_share: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inference", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", type=Path, default=None, help="artifact folder")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per case, at most")
    parser.add_argument(
        "--budget",
        type=float,
        default=3.0,
        help="seconds per path and case after which fewer rounds are timed (at least three)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    artifact_dir = args.model or default_model_dir()
    metadata = read_metadata(artifact_dir)
    model_path = verify_model_file(artifact_dir, metadata)
    threads = interpreter_threads()
    report: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "model": {
            "version": metadata.version,
            "input_size": metadata.input_size,
            "test_time_augmentation": metadata.test_time_augmentation,
            "model_file_mib": round(model_path.stat().st_size / 2**20, 2),
        },
        "interpreter_threads": threads,
    }
    loaded = load_keras_model(model_path)
    kernel = head_kernel(loaded)
    # As inference serves it: the score and the feature maps its heatmap is drawn from.
    model = with_feature_maps(loaded)
    reference = keras_forward(model)
    started = time.perf_counter()
    served = tflite_forward(
        model, reference, metadata, threads=threads, cache=FlatbufferCache(cache_root())
    )
    report["tflite_load_seconds"] = round(time.perf_counter() - started, 2)

    def naive(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, maps = model.predict(pixels.astype(np.float32), verbose=0)
        return np.asarray(logits), np.asarray(maps)

    paths: dict[str, Forward] = {NAIVE: naive, TRACED: reference, SERVED: served}
    gpus = gpu_names()
    report["devices"] = {"cpu": report["machine"].get("cpu"), "gpu": gpus or None}
    if gpus:
        started = time.perf_counter()
        paths[GPU], report["gpu_precision"] = verified_gpu_forward(model, reference, metadata)
        report["gpu_load_seconds"] = round(time.perf_counter() - started, 2)
        report["gpu_half_precision_on_test_split"] = half_precision_agreement(
            model, metadata, artifact_dir
        )
    timer = Timer(repeats=args.repeats, budget_s=args.budget)
    report["forward"] = [asdict(row) for row in time_forwards(paths, metadata, args, timer)]
    report["max_probability_difference_vs_keras"] = probability_agreement(paths, metadata)
    keras_classifier = Classifier(reference, metadata, kernel=kernel, backend="keras")
    served_classifier = Classifier(served, metadata, kernel=kernel, backend="tflite")
    report["upload"] = [asdict(row) for row in time_uploads(served_classifier, timer)]
    report["end_to_end_single_upload"] = end_to_end(
        naive, keras_classifier, served_classifier, timer
    )
    # Load at the end too: a reader can tell whether the background changed during the run.
    report["machine"]["load_average_after"] = load_average()
    print("\n".join(inference_figures(report)))
    json_write(args.json, report)
    return 0


class Timer:
    """Wall times of several calls, timed in turns so that each sees the same load."""

    def __init__(self, *, repeats: int, budget_s: float) -> None:
        self.repeats = repeats
        self.budget_s = budget_s

    def times_s(self, calls: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
        """Per call, every timed duration in seconds, after one untimed call (tracing)."""
        for call in calls.values():
            call()
        times: dict[str, list[float]] = {name: [] for name in calls}
        deadline = time.perf_counter() + self.budget_s * len(calls)
        for round_number in range(self.repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
            if round_number >= 2 and time.perf_counter() > deadline:
                break
        return times

    def medians_ms(self, calls: dict[str, Callable[[], object]]) -> dict[str, float]:
        return {name: statistics.median(t) * 1e3 for name, t in self.times_s(calls).items()}


def time_forwards(
    paths: dict[str, Forward], metadata: ModelMetadata, args: argparse.Namespace, timer: Timer
) -> list[ForwardTiming]:
    """Every path on every batch size, against model.predict on the same batch."""
    size = metadata.input_size
    pixels = np.stack([synthetic_lesion(seed, height=size, width=size) for seed in range(4)])
    rows = []
    for batch_size in args.batch_sizes:
        batch = np.resize(pixels, (batch_size, size, size, 3))
        times = timer.times_s({name: functools.partial(f, batch) for name, f in paths.items()})
        # Medians are the figures; the best (least disturbed) calls say what a path costs when
        # nothing else competes for the cores.
        median = {name: statistics.median(t) * 1e3 / batch_size for name, t in times.items()}
        best = {name: min(t) * 1e3 / batch_size for name, t in times.items()}
        rows += [
            ForwardTiming(
                path=name,
                batch_size=batch_size,
                median_ms_per_image=round(median[name], 3),
                images_per_s=round(1e3 / median[name], 1),
                speedup_vs_naive=round(median[NAIVE] / median[name], 2),
                best_ms_per_image=round(best[name], 3),
                best_speedup_vs_naive=round(best[NAIVE] / best[name], 2),
                repeats=len(times[name]),
            )
            for name in paths
        ]
    return rows


def dataset_rows() -> list[dict[str, str]]:
    """The dataset manifest's rows, or none where the dataset is absent."""
    manifest = default_data_dir() / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def probability_agreement(paths: dict[str, Forward], metadata: ModelMetadata) -> dict[str, Any]:
    """Max |calibrated probability difference| of each path from the traced Keras call."""
    size, count = metadata.input_size, 24
    rows = dataset_rows()
    if rows:
        # Every n-th row, so that every source and both labels are likely represented.
        chosen = rows[:: max(1, len(rows) // count)][:count]
        files = [default_data_dir() / "images" / row["file"] for row in chosen]
        pixels = prepare_batch(
            files, input_size=size, effective_resolution=metadata.effective_resolution
        )
        images = f"{len(chosen)} real dataset images"
    else:
        pixels = np.stack([synthetic_lesion(seed, height=size, width=size) for seed in range(24)])
        images = f"{count} synthetic lesion images (dataset not found)"
    per_path = {
        name: max_probability_difference(paths[TRACED], forward, pixels, metadata.temperature)
        for name, forward in paths.items()
        if name != TRACED
    }
    return {"images": images, "per_path": per_path}


def half_precision_agreement(
    model: Any, metadata: ModelMetadata, artifact_dir: Path
) -> dict[str, Any]:
    """On a GPU, float16 against float32 on the served split's test images: the largest
    probability difference and how many high-risk flags differ."""
    from inference.backends import gpu_forward, half_precision_copy
    from training.data import default_data_dirs, load_dataset, read_split_csv

    dataset = load_dataset(default_data_dirs(), check_images=False)
    test = read_split_csv(artifact_dir / "split.csv", dataset).test
    half, full = gpu_forward(half_precision_copy(model)), gpu_forward(model)
    differences, flips = [], 0
    for start in range(0, len(test), 64):
        pixels = metadata.preprocessing.batch([s.path for s in test[start : start + 64]])
        probabilities = [
            1.0 / (1.0 + np.exp(-forward(pixels)[0].reshape(-1) / metadata.temperature))
            for forward in (half, full)
        ]
        differences.append(float(np.abs(probabilities[0] - probabilities[1]).max()))
        flips += int(
            np.sum(
                (probabilities[0] >= metadata.threshold) != (probabilities[1] >= metadata.threshold)
            )
        )
    return {
        "images": len(test),
        "max_probability_difference": max(differences),
        "flags_differing": flips,
    }


def upload_jpegs() -> list[tuple[str, bytes]]:
    """Uploads as a browser would send them: a dataset image, and camera-sized photos."""
    square = [row for row in dataset_rows() if (row["width"], row["height"]) == ("256", "256")]
    if square:
        source = Image.open(default_data_dir() / "images" / square[0]["file"]).convert("RGB")
    else:
        source = Image.fromarray(synthetic_lesion(7, height=256, width=256))
    uploads = []
    for width, height in UPLOAD_SIZES:
        image = source if source.size == (width, height) else source.resize((width, height))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        uploads.append((f"{width}x{height} JPEG", buffer.getvalue()))
    return uploads


def time_uploads(classifier: Classifier, timer: Timer) -> list[UploadTiming]:
    """Split scoring one upload into decoding plus resizing and the served forward pass."""
    rows = []
    for name, data in upload_jpegs():
        pixels = classifier.preprocess([data])
        medians = timer.medians_ms(
            {
                "decode": functools.partial(classifier.preprocess, [data]),
                "forward": functools.partial(classifier.probabilities, pixels),
            }
        )
        decode_ms, forward_ms = medians["decode"], medians["forward"]
        rows.append(
            UploadTiming(
                upload=name,
                jpeg_kib=round(len(data) / 1024, 1),
                decode_resize_ms=round(decode_ms, 3),
                forward_ms=round(forward_ms, 3),
                decode_share=round(decode_ms / (decode_ms + forward_ms), 3),
            )
        )
    return rows


def end_to_end(
    naive: Forward, keras_classifier: Classifier, served: Classifier, timer: Timer
) -> dict[str, float]:
    """Score one 1024x768 upload end to end, every test-time view metadata asks for, three ways."""
    data = dict(upload_jpegs())["1024x768 JPEG"]
    naive_classifier = Classifier(
        naive, served.metadata, kernel=served.head_kernel, backend="keras"
    )
    medians = timer.medians_ms(
        {
            "naive": functools.partial(naive_classifier.predict, [data]),
            "keras": functools.partial(keras_classifier.predict, [data]),
            "served": functools.partial(served.predict, [data]),
        }
    )
    return {
        "naive_model_predict_ms": round(medians["naive"], 2),
        "keras_traced_ms": round(medians["keras"], 2),
        "served_tflite_ms": round(medians["served"], 2),
        "speedup_served_vs_naive": round(medians["naive"] / medians["served"], 1),
    }


def versions() -> dict[str, str]:
    """Versions of Python and of every package a measured path uses."""
    found = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "ai-edge-litert", "numpy", "pillow"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


if __name__ == "__main__":
    sys.exit(main())
