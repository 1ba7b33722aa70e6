"""Peak memory of scoring images for training and evaluation: streamed in batches against all
decoded at once, each at two dataset sizes.

Run from the repository root, with the dermoscopy images present:

    python -m benchmarks.training_memory [--images 400] [--input-size 224]

Each measurement runs in a fresh process: it builds the Lite0 classifier (random weights: memory
does not depend on them) and scores the first N images (and 4N) of the data folders, either
through `training.batches.predict_logits` (what training, finalize and evaluation do) or by
decoding every image into one array first and predicting on it (the baseline). It prints the
peak resident memory of each process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

if not __package__:
    raise SystemExit("run it from the repository root as: python -m benchmarks.training_memory")

MODES = ("streamed", "all-at-once")


def _measure(mode: str, images: int, input_size: int) -> None:
    """Score `images` images one way; print the process's peak resident memory in MiB."""
    import keras

    from inference.preprocessing import Preprocessing
    from training.backbones import build_base, build_classifier
    from training.batches import predict_logits
    from training.data import default_data_dirs, load_dataset

    samples = load_dataset(default_data_dirs(), check_images=False).samples[:images]
    preprocessing = Preprocessing(input_size=input_size, effective_resolution=input_size)
    base = build_base("efficientnet_lite0", input_size, weights_path=None)
    model = build_classifier(base, architecture="efficientnet_lite0")
    if mode == "streamed":
        logits = predict_logits(model, samples, preprocessing)
    else:
        pixels = preprocessing.batch([sample.path for sample in samples])
        logits = model.predict(pixels.astype("float32"), batch_size=64, verbose=0)
    keras.backend.clear_session()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(logits)} {peak_mib:.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_memory")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        _measure(args.measure[0], int(args.measure[1]), args.input_size)
        return 0
    print(f"Peak resident memory, MiB (Lite0 at {args.input_size} px, one process each)")
    print("| images | " + " | ".join(MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for images in (args.images, 4 * args.images):
        row = []
        for mode in MODES:
            command = [sys.executable, "-m", "benchmarks.training_memory"]
            command += ["--input-size", str(args.input_size), "--measure", mode, str(images)]
            # This module itself, with arguments built above: nothing untrusted.
            result = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
            output = result.stdout
            scored, peak = output.split()[-2:]
            row.append(f"{peak} ({scored} scored)")
        print(f"| {images} | " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
