"""Labelled images: where they are, how they are split, and how they are fed to Keras.

Two layouts are accepted:
- a folder with `manifest.csv` (columns file, label, source; optional diagnosis, sha256) and the
  files under `images/` — the layout of the shared dermoscopy set;
- a plain ISIC-style folder `<root>/benign/*.jpg`, `<root>/malignant/*.jpg` (any image
  extension), whose source is the folder's own name.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.preprocessing import prepare_image

LABELS = ("benign", "malignant")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SUBSETS = ("train", "validation", "test")


@dataclass(frozen=True)
class Sample:
    """One labelled image."""

    path: Path
    label: int  # index into LABELS: 1 is malignant
    source: str
    diagnosis: str = ""

    @property
    def file(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Dataset:
    """Every labelled image of a data folder, with a fingerprint of what was read."""

    root: Path
    samples: tuple[Sample, ...]
    fingerprint: str  # sha256 of the manifest (or of the sorted listing for folder layouts)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)


@dataclass(frozen=True)
class Split:
    """A train / validation / test partition of a dataset."""

    train: tuple[Sample, ...]
    validation: tuple[Sample, ...]
    test: tuple[Sample, ...]
    seed: int

    def subset(self, name: str) -> tuple[Sample, ...]:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def default_data_dir() -> Path:
    """`DERMATRIAGE_DATA_DIR`, else the shared dermoscopy folder beside the repository."""
    configured = os.environ.get("DERMATRIAGE_DATA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dermoscopy"


def load_dataset(root: Path) -> Dataset:
    """Read a data folder in either supported layout."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder {root} does not exist; set DERMATRIAGE_DATA_DIR or pass --data"
        )
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return _load_manifest(root, manifest)
    return _load_folders(root)


def _label_index(label: str, where: str) -> int:
    try:
        return LABELS.index(label.strip().lower())
    except ValueError:
        raise ValueError(f"{where}: label {label!r} is not one of {LABELS}") from None


def _load_manifest(root: Path, manifest: Path) -> Dataset:
    images_dir = root / "images" if (root / "images").is_dir() else root
    samples = []
    with manifest.open(newline="") as handle:
        for line_number, row in enumerate(csv.DictReader(handle), start=2):
            where = f"{manifest.name} line {line_number}"
            samples.append(
                Sample(
                    path=images_dir / row["file"],
                    label=_label_index(row["label"], where),
                    source=row.get("source") or root.name,
                    diagnosis=row.get("diagnosis") or "",
                )
            )
    if not samples:
        raise ValueError(f"{manifest} lists no images")
    fingerprint = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return Dataset(root=root, samples=tuple(samples), fingerprint=fingerprint)


def _load_folders(root: Path) -> Dataset:
    samples = []
    for label in LABELS:
        folder = root / label
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(path=path, label=LABELS.index(label), source=root.name))
    if not samples:
        raise ValueError(
            f"{root} has neither manifest.csv nor benign/ and malignant/ folders with images"
        )
    listing = "\n".join(f"{s.label},{s.path.relative_to(root).as_posix()}" for s in samples)
    fingerprint = hashlib.sha256(listing.encode()).hexdigest()
    return Dataset(root=root, samples=tuple(samples), fingerprint=fingerprint)


def split_dataset(
    dataset: Dataset, *, seed: int, validation_fraction: float = 0.15, test_fraction: float = 0.15
) -> Split:
    """Split deterministically, stratified by (label, source) so each subset mirrors the whole."""
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise ValueError("validation and test fractions must be between 0 and 1")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation and test fractions must leave images for training")
    strata: dict[tuple[int, str], list[Sample]] = defaultdict(list)
    for sample in dataset.samples:
        strata[(sample.label, sample.source)].append(sample)

    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    validation: list[Sample] = []
    test: list[Sample] = []
    for key in sorted(strata):
        # Sorting first makes the split independent of the order files were listed in.
        members = sorted(strata[key], key=lambda s: s.file)
        order = rng.permutation(len(members))
        n_test = round(len(members) * test_fraction)
        n_validation = round(len(members) * validation_fraction)
        test.extend(members[i] for i in order[:n_test])
        validation.extend(members[i] for i in order[n_test : n_test + n_validation])
        train.extend(members[i] for i in order[n_test + n_validation :])
    return Split(
        train=tuple(sorted(train, key=lambda s: s.file)),
        validation=tuple(sorted(validation, key=lambda s: s.file)),
        test=tuple(sorted(test, key=lambda s: s.file)),
        seed=seed,
    )


def subsample(samples: tuple[Sample, ...], limit: int | None) -> tuple[Sample, ...]:
    """At most `limit` samples spread evenly over the subset (for smoke runs on a few images)."""
    if not limit or len(samples) <= limit:
        return samples
    indices = np.linspace(0, len(samples) - 1, limit).round().astype(int)
    return tuple(samples[i] for i in indices)


def write_split_csv(split: Split, path: Path) -> None:
    """Save which image went to which subset, so every metric can be reproduced."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "source", "subset"])
        for subset in SUBSETS:
            for sample in split.subset(subset):
                writer.writerow([sample.file, LABELS[sample.label], sample.source, subset])


def read_split_csv(path: Path, dataset: Dataset) -> Split:
    """Rebuild a saved split against a dataset (same files, same subsets)."""
    by_file = {sample.file: sample for sample in dataset.samples}
    subsets: dict[str, list[Sample]] = {name: [] for name in SUBSETS}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["file"] not in by_file:
                raise ValueError(f"{path.name} names {row['file']}, which the data folder lacks")
            subsets[row["subset"]].append(by_file[row["file"]])
    return Split(
        train=tuple(subsets["train"]),
        validation=tuple(subsets["validation"]),
        test=tuple(subsets["test"]),
        seed=-1,
    )


def load_pixels(
    samples: Sequence[Sample], *, input_size: int, effective_resolution: int
) -> np.ndarray:
    """Decode every sample into one (N, size, size, 3) uint8 array, as inference would."""
    pixels = np.empty((len(samples), input_size, input_size, 3), dtype=np.uint8)
    for index, sample in enumerate(samples):
        pixels[index] = prepare_image(
            sample.path, input_size=input_size, effective_resolution=effective_resolution
        )
    return pixels


def balanced_sample_weights(samples: Sequence[Sample], *, by_source: bool) -> np.ndarray:
    """Per-image loss weights under which every group contributes equally.

    Groups are labels, or (label, source) pairs with `by_source`. The latter matters here: the
    sources differ in malignant share (53% vs 18%), so an unweighted model profits from
    recognising the source. With every (label, source) group weighted equally, each source is
    half benign and half malignant in the loss, and knowing the source is worth nothing.
    """
    keys = [(s.label, s.source) if by_source else (s.label, "") for s in samples]
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for key in keys:
        counts[key] += 1
    if {label for label, _ in counts} != set(range(len(LABELS))):
        raise ValueError(f"training subset lacks a class: groups {dict(counts)}")
    scale = len(keys) / len(counts)
    return np.array([scale / counts[key] for key in keys], dtype=np.float32)
