"""Benchmark the ways of running the served model, all in one process so the ratios compare.

Run from the repository root:

    python -m benchmarks.inference [--model DIR] [--json PATH]

It times the naive per-call `model.predict` against a traced Keras call, the LiteRT interpreter
(XNNPACK) that `load_classifier` uses by default, and ONNX Runtime when `tf2onnx` and
`onnxruntime` are installed; checks how closely each reproduces the Keras model's probabilities;
and splits the time to score one upload into decoding plus resizing and the forward pass.
Absolute figures depend on the machine and on whatever else runs on it; the ratios, measured in
the same run, are what to compare.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import importlib.metadata
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if not __package__:
    # Run as a file, this script's folder comes first on sys.path and its own name shadows the
    # `inference` package it measures.
    raise SystemExit("run it from the repository root as: python -m benchmarks.inference")

import numpy as np
from PIL import Image

from benchmarks.support import machine
from inference.artifact import ModelMetadata, default_model_dir, read_metadata, verify_model_file
from inference.backends import (
    FlatbufferCache,
    Forward,
    InterpreterForward,
    cache_root,
    interpreter_threads,
    keras_forward,
    load_keras_model,
    max_probability_difference,
    tflite_forward,
)
from inference.classifier import Classifier
from inference.preprocessing import open_image, prepare_batch, resize_for_model
from inference.synthetic import synthetic_lesion
from training.data import default_data_dir

NAIVE = "keras model.predict"
UPLOAD_SIZES = ((256, 256), (1024, 768), (4032, 3024))


@dataclass
class ForwardTiming:
    path: str
    batch_size: int
    median_ms_per_image: float
    speedup_vs_naive: float
    best_ms_per_image: float
    best_speedup_vs_naive: float
    repeats: int


@dataclass
class UploadTiming:
    upload: str
    jpeg_kib: float
    decode_resize_ms: float
    decode_resize_without_draft_ms: float
    forward_ms: float
    decode_share: float
    one_view_forward_ms: float
    one_view_decode_share: float
    # Decoding alone, at the smallest scale the draft allows, with no resizing: what the upload
    # costs before any of our code runs, so the lowest decode share this decoder allows.
    decode_only_ms: float
    decode_share_floor: float


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print a report and optionally write it as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="artifact folder")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
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
            "effective_resolution": metadata.effective_resolution,
            "test_time_augmentation": metadata.test_time_augmentation,
            "model_file_mib": round(model_path.stat().st_size / 2**20, 2),
        },
        "interpreter_threads": threads,
    }
    print_header(report)

    model = load_keras_model(model_path)
    reference = keras_forward(model)
    started = time.perf_counter()
    fast = tflite_forward(
        model, reference, metadata, threads=threads, cache=FlatbufferCache(cache_root())
    )
    report["tflite_load_seconds"] = round(time.perf_counter() - started, 2)
    paths = candidate_paths(model, reference, fast, metadata, threads)

    timer = Timer(repeats=args.repeats, budget_s=args.budget)
    forward_rows = time_forwards(paths, metadata, args.batch_sizes, timer)
    report["forward"] = [asdict(row) for row in forward_rows]
    print_forward(forward_rows)

    agreement = probability_agreement(paths, reference, metadata)
    report["max_probability_difference_vs_keras"] = agreement
    print("\nmax |probability difference| vs the Keras model (single view, calibrated):")
    for name, value in agreement["per_path"].items():
        print(f"  {name:<42} {value:.2e}")
    print(f"  {'served classifiers (TTA as metadata)':<42} {agreement['served_classifier']:.2e}")
    print(f"  on {agreement['images']}")

    keras_classifier = Classifier(reference, metadata, backend="keras")
    fast_classifier = Classifier(fast, metadata, backend="tflite")
    uploads = time_uploads(fast, metadata, timer)
    report["upload"] = [asdict(row) for row in uploads]
    print_uploads(uploads, metadata)

    report["end_to_end_single_upload"] = end_to_end(model, keras_classifier, fast_classifier, timer)
    print_end_to_end(report["end_to_end_single_upload"])

    # Load at the end too: a reader can tell whether the background changed during the run.
    report["machine"]["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


class Timer:
    """Median wall times of several calls, timed in turns so that each sees the same load."""

    def __init__(self, *, repeats: int, budget_s: float) -> None:
        self.repeats = repeats
        self.budget_s = budget_s

    def medians_ms(self, calls: dict[str, Callable[[], object]]) -> dict[str, tuple[float, int]]:
        """Per call: median milliseconds and how many times it was timed."""
        return {
            name: (statistics.median(times) * 1e3, len(times))
            for name, times in self.times_s(calls).items()
        }

    def times_s(self, calls: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
        """Per call: every timed duration, in seconds.

        Each call runs once untimed first (tracing, allocation). Then every round times each call
        once, so background load that comes and goes weighs on all of them alike.
        """
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


def candidate_paths(
    model: Any,
    reference: Forward,
    fast: InterpreterForward,
    metadata: ModelMetadata,
    threads: int,
) -> dict[str, Forward]:
    """Every way of running the model's forward pass, named, each taking a uint8 batch."""

    def naive(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(pixels.astype(np.float32), verbose=0))

    flatbuffer = fast.flatbuffer
    paths: dict[str, Forward] = {
        NAIVE: naive,
        "keras traced call": reference,
        f"litert, {threads} threads, whole batch": InterpreterForward(
            flatbuffer, threads=threads, max_batch=1024
        ),
        f"litert, {threads} threads, chunks of 1": InterpreterForward(
            flatbuffer, threads=threads, max_batch=1
        ),
        f"litert, {threads} threads, chunks of {fast.max_batch} (served)": fast,
    }
    if threads != 1:
        paths["litert, 1 thread, whole batch"] = InterpreterForward(
            flatbuffer, threads=1, max_batch=1024
        )
    onnx = onnx_forward(model, metadata.input_size, threads)
    if isinstance(onnx, str):
        print(f"onnxruntime: skipped ({onnx})")
    else:
        paths[f"onnxruntime, {threads} threads"] = onnx
    return paths


def onnx_forward(model: Any, input_size: int, threads: int) -> Forward | str:
    """An ONNX Runtime forward via tf2onnx, or why there is none."""
    try:
        import onnxruntime
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        return f"not installed: {exc.name}"
    signature = (tf.TensorSpec((None, input_size, input_size, 3), tf.float32, name="pixels"),)

    @tf.function(input_signature=signature)
    def call(pixels: tf.Tensor) -> tf.Tensor:
        return model(pixels, training=False)

    try:
        proto, _ = tf2onnx.convert.from_function(call, input_signature=signature, opset=17)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # tf2onnx fails in many ways on ops it does not know
        return f"conversion failed: {exc}"
    input_name = session.get_inputs()[0].name

    def forward(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {input_name: pixels.astype(np.float32)})[0])

    return forward


def time_forwards(
    paths: dict[str, Forward], metadata: ModelMetadata, batch_sizes: list[int], timer: Timer
) -> list[ForwardTiming]:
    """Time every path on every batch size; speed-ups against model.predict on the same batch."""
    size = metadata.input_size
    pixels = np.stack([synthetic_lesion(seed, height=size, width=size) for seed in range(4)])
    rows: list[ForwardTiming] = []
    for batch_size in batch_sizes:
        batch = np.resize(pixels, (batch_size, size, size, 3))
        times = timer.times_s(
            {name: functools.partial(forward, batch) for name, forward in paths.items()}
        )
        # Medians are the figures; the best (least disturbed) calls say what the path costs
        # when nothing else competes for the cores.
        median = {name: statistics.median(t) * 1e3 / batch_size for name, t in times.items()}
        best = {name: min(t) * 1e3 / batch_size for name, t in times.items()}
        for name, durations in times.items():
            rows.append(
                ForwardTiming(
                    path=name,
                    batch_size=batch_size,
                    median_ms_per_image=round(median[name], 3),
                    speedup_vs_naive=round(median[NAIVE] / median[name], 2),
                    best_ms_per_image=round(best[name], 3),
                    best_speedup_vs_naive=round(best[NAIVE] / best[name], 2),
                    repeats=len(durations),
                )
            )
    return rows


def dataset_rows() -> list[dict[str, str]]:
    """The dataset manifest's rows, or none where the dataset is absent."""
    manifest = default_data_dir() / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def evaluation_images(metadata: ModelMetadata, count: int = 24) -> tuple[np.ndarray, str]:
    """Real dermoscopy images when the dataset is present, else lesion-like synthetic ones."""
    size = metadata.input_size
    rows = dataset_rows()
    if rows:
        # Every n-th row, so that both sources and both labels are likely represented.
        chosen = rows[:: max(1, len(rows) // count)][:count]
        pixels = prepare_batch(
            [default_data_dir() / "images" / row["file"] for row in chosen],
            input_size=size,
            effective_resolution=metadata.effective_resolution,
        )
        return pixels, f"{len(chosen)} real dataset images"
    synthetic = [synthetic_lesion(seed, height=size, width=size) for seed in range(count)]
    return np.stack(synthetic), f"{count} synthetic lesion images (dataset not found)"


def probability_agreement(
    paths: dict[str, Forward], reference: Forward, metadata: ModelMetadata
) -> dict[str, Any]:
    """Max |probability difference| of each path against the traced Keras call."""
    pixels, description = evaluation_images(metadata)
    per_path = {
        name: max_probability_difference(reference, forward, pixels, metadata.temperature)
        for name, forward in paths.items()
        if name != "keras traced call"
    }
    fast = next(forward for name, forward in paths.items() if "(served)" in name)
    served = np.abs(
        Classifier(reference, metadata).probabilities(pixels)
        - Classifier(fast, metadata).probabilities(pixels)
    ).max()
    return {"images": description, "per_path": per_path, "served_classifier": float(served)}


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


def time_uploads(forward: Forward, meta: ModelMetadata, timer: Timer) -> list[UploadTiming]:
    """Split scoring one upload into decoding plus resizing and the forward pass as served."""
    classifier = Classifier(forward, meta, backend="tflite")
    # The same forward without test-time augmentation, for artifacts that do not use it.
    one_view = Classifier(forward, dataclasses.replace(meta, test_time_augmentation=False))
    rows = []
    for name, data in upload_jpegs():
        pixels = classifier.preprocess([data])

        def without_draft(data: bytes = data) -> np.ndarray:
            image = open_image(data, draft_size=None)
            return resize_for_model(
                image, input_size=meta.input_size, effective_resolution=meta.effective_resolution
            )

        medians = timer.medians_ms(
            {
                "decode": functools.partial(classifier.preprocess, [data]),
                "decode only": functools.partial(
                    open_image, data, draft_size=meta.effective_resolution
                ),
                "decode without draft": without_draft,
                "forward": functools.partial(classifier.probabilities, pixels),
                "one view": functools.partial(one_view.probabilities, pixels),
            }
        )
        decode_ms, full_decode_ms = medians["decode"][0], medians["decode without draft"][0]
        forward_ms, one_view_ms = medians["forward"][0], medians["one view"][0]
        decode_only_ms = medians["decode only"][0]
        rows.append(
            UploadTiming(
                upload=name,
                jpeg_kib=round(len(data) / 1024, 1),
                decode_resize_ms=round(decode_ms, 3),
                decode_resize_without_draft_ms=round(full_decode_ms, 3),
                forward_ms=round(forward_ms, 3),
                decode_share=round(decode_ms / (decode_ms + forward_ms), 3),
                one_view_forward_ms=round(one_view_ms, 3),
                one_view_decode_share=round(decode_ms / (decode_ms + one_view_ms), 3),
                decode_only_ms=round(decode_only_ms, 3),
                decode_share_floor=round(decode_only_ms / (decode_only_ms + forward_ms), 3),
            )
        )
    return rows


def end_to_end(
    model: Any, keras_classifier: Classifier, fast_classifier: Classifier, timer: Timer
) -> dict[str, float]:
    """Score one 1024x768 upload end to end, TTA as metadata says, three ways."""
    data = dict(upload_jpegs())["1024x768 JPEG"]
    meta = fast_classifier.metadata

    def naive() -> float:
        pixels = fast_classifier.preprocess([data])
        views = [pixels]
        if meta.test_time_augmentation:
            views += [pixels[:, :, ::-1], pixels[:, ::-1, :], pixels[:, ::-1, ::-1]]
        logits = [model.predict(view.astype(np.float32), verbose=0).item() for view in views]
        return float(np.mean(logits))

    medians = timer.medians_ms(
        {
            "naive": naive,
            "keras": functools.partial(keras_classifier.predict, [data]),
            "fast": functools.partial(fast_classifier.predict, [data]),
        }
    )
    naive_ms, keras_ms, fast_ms = (medians[name][0] for name in ("naive", "keras", "fast"))
    return {
        "naive_model_predict_ms": round(naive_ms, 2),
        "keras_traced_ms": round(keras_ms, 2),
        "served_tflite_ms": round(fast_ms, 2),
        "speedup_served_vs_naive": round(naive_ms / fast_ms, 1),
    }


def versions() -> dict[str, str]:
    """Versions of Python and of every package a measured path uses."""
    found = {"python": platform.python_version()}
    for package in (
        "tensorflow",
        "keras",
        "ai-edge-litert",
        "onnxruntime",
        "tf2onnx",
        "numpy",
        "pillow",
    ):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def print_header(report: dict[str, Any]) -> None:
    machine_info, model = report["machine"], report["model"]
    print(
        f"machine: {machine_info['cpu']}, {machine_info['usable_cores']} usable of "
        f"{machine_info['logical_cores']} cores, load average {machine_info['load_average_1_5_15']}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(
        f"model: {model['version']} ({model['model_file_mib']} MiB), input {model['input_size']} "
        f"px, test-time augmentation {model['test_time_augmentation']}"
    )
    print(f"interpreter threads: {report['interpreter_threads']}\n")


def print_forward(rows: list[ForwardTiming]) -> None:
    print(
        "forward pass, one view: ms per image and speed-up vs model.predict on the same batch, "
        "median and best call:"
    )
    print(f"  {'path':<42} {'batch':>5} {'median':>8} {'speed-up':>9} {'best':>8} {'speed-up':>9}")
    for row in rows:
        print(
            f"  {row.path:<42} {row.batch_size:>5} {row.median_ms_per_image:>8.2f} "
            f"{row.speedup_vs_naive:>8.1f}x {row.best_ms_per_image:>8.2f} "
            f"{row.best_speedup_vs_naive:>8.1f}x"
        )


def print_uploads(rows: list[UploadTiming], metadata: ModelMetadata) -> None:
    views = 4 if metadata.test_time_augmentation else 1
    print(
        f"\none upload on the served path, median ms (forward: {views} view(s) as served; "
        "1 view: without test-time augmentation):"
    )
    print(
        f"  {'upload':<16} {'KiB':>6} {'decode+resize':>14} {'(no draft)':>11} "
        f"{'forward':>8} {'share':>6} {'1 view':>7} {'share':>6} {'decode only':>12} "
        f"{'floor':>6}"
    )
    for row in rows:
        print(
            f"  {row.upload:<16} {row.jpeg_kib:>6.0f} {row.decode_resize_ms:>14.2f} "
            f"{row.decode_resize_without_draft_ms:>11.2f} {row.forward_ms:>8.2f} "
            f"{row.decode_share:>6.0%} {row.one_view_forward_ms:>7.2f} "
            f"{row.one_view_decode_share:>6.0%} {row.decode_only_ms:>12.2f} "
            f"{row.decode_share_floor:>6.0%}"
        )


def print_end_to_end(figures: dict[str, float]) -> None:
    print("\none 1024x768 upload end to end (decode, resize, every TTA view), median ms:")
    print(f"  naive model.predict per view   {figures['naive_model_predict_ms']:>8.1f}")
    print(f"  traced Keras call              {figures['keras_traced_ms']:>8.1f}")
    print(f"  served LiteRT classifier       {figures['served_tflite_ms']:>8.1f}")
    print(f"  speed-up, served vs naive      {figures['speedup_served_vs_naive']:>7.1f}x")


if __name__ == "__main__":
    sys.exit(main())
