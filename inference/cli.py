"""`python -m inference predict FILES_OR_FOLDERS...`: score images from the command line.

`python -m inference prepare` loads the model once, converting and caching its LiteRT flatbuffer,
so that the first worker to start does not pay for the conversion.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from inference.backends import BACKEND_CHOICES, BACKEND_ENV, FlatbufferCache, cache_root
from inference.classifier import Classifier, load_classifier
from inference.disclaimer import DISCLAIMER
from inference.errors import ImageDecodeError, InferenceError
from inference.preprocessing import prepare_image

FIELDS = ("file", "probability", "high_risk", "label", "model_version", "error")


def _expand(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Every visible file, so a stray non-image shows up as an error row, not silently.
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
            )
        else:
            yield path


def score_files(
    classifier: Classifier, paths: Sequence[str], *, batch_size: int = 32
) -> Iterator[dict[str, Any]]:
    """Yield one row per file: its score, or the reason it could not be scored."""
    meta = classifier.metadata
    pending: list[tuple[Path, np.ndarray]] = []

    def flush() -> Iterator[dict[str, Any]]:
        if not pending:
            return
        results = classifier.predict_pixels(np.stack([pixels for _, pixels in pending]))
        for (file, _), result in zip(pending, results, strict=True):
            yield {
                "file": str(file),
                "probability": round(result.probability, 6),
                "high_risk": result.high_risk,
                "label": result.label,
                "model_version": result.model_version,
                "error": "",
            }
        pending.clear()

    for path in _expand(paths):
        try:
            pixels = prepare_image(
                path, input_size=meta.input_size, effective_resolution=meta.effective_resolution
            )
        except (ImageDecodeError, IsADirectoryError, PermissionError) as exc:
            yield from flush()
            yield {
                "file": str(path),
                "probability": None,
                "high_risk": None,
                "label": None,
                "model_version": meta.version,
                "error": str(exc),
            }
            continue
        pending.append((path, pixels))
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()


def _write(rows: list[dict[str, Any]], output_format: str, out: TextIO) -> None:
    if output_format == "json":
        json.dump({"disclaimer": DISCLAIMER, "predictions": rows}, out, indent=2)
        out.write("\n")
        return
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 when every file was scored, 1 when some were not, 2 on bad setup."""
    parser = argparse.ArgumentParser(
        prog="python -m inference", description=f"Score dermoscopic images. {DISCLAIMER}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="score image files or folders of images")
    predict.add_argument("paths", nargs="+", metavar="FILES_OR_FOLDERS")
    predict.add_argument("--format", choices=("csv", "json"), default="csv")
    predict.add_argument("--batch-size", type=int, default=32)
    prepare = commands.add_parser(
        "prepare",
        help="load the model once so its LiteRT flatbuffer is converted and cached "
        "(e.g. while building an image), and say which backend it runs on",
    )
    for command in (predict, prepare):
        command.add_argument("--model", type=Path, default=None, help="artifact folder")
        command.add_argument(
            "--backend",
            choices=BACKEND_CHOICES,
            default=None,
            help=f"what runs the model (default: ${BACKEND_ENV}, else auto: LiteRT if it matches)",
        )
    args = parser.parse_args(argv)

    try:
        classifier = load_classifier(args.model, backend=args.backend)
    except InferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "prepare":
        flatbuffer_path, _ = FlatbufferCache(cache_root()).paths(classifier.metadata)
        where = f", flatbuffer cached at {flatbuffer_path}" if flatbuffer_path.is_file() else ""
        print(f"{classifier.version} runs on the {classifier.backend} backend{where}")
        return 0
    rows = list(score_files(classifier, args.paths, batch_size=max(1, args.batch_size)))
    _write(rows, args.format, sys.stdout)
    print(f"# {classifier.version} scored on the {classifier.backend} backend", file=sys.stderr)
    print(f"# {DISCLAIMER}", file=sys.stderr)
    return 1 if any(row["error"] for row in rows) else 0
