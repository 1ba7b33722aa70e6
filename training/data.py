"""Labelled images: where they are, how they are split, and how they are fed to Keras.

Training reads any number of data folders at once. Each folder has one of two layouts:
- `manifest.csv` (columns file, label, source; optional diagnosis, lesion_id, patient_id) with
  the files under `images/`, the layout of the shared dermoscopy folders;
- a plain ISIC-style folder `<root>/benign/*.jpg`, `<root>/malignant/*.jpg` (any image
  extension), whose source is the folder's own name.

Everything that would stop training half-way (a missing folder, a listed file that is absent or
unreadable, one file name in two places) is found by `load_dataset`, before any training starts.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

LABELS = ("benign", "malignant")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SUBSETS = ("train", "validation", "test")
# Whole sources kept out of training and model choice's training side: how the model does on a
# clinic it has never seen.
HOLDOUT = "holdout"
# How many problems one error message lists before it only counts the rest.
LISTED_PROBLEMS = 10


@dataclass(frozen=True)
class Sample:
    """One labelled image."""

    path: Path
    label: int  # index into LABELS: 1 is malignant
    source: str
    diagnosis: str = ""
    # Images of one lesion, or of one patient, share these; empty where unknown.
    lesion_id: str = ""
    patient_id: str = ""
    # How splits name the image: the manifest's file name, or label/file in the folder layout
    # (where benign/1.jpg and malignant/1.jpg are two images).
    name: str = ""

    @property
    def file(self) -> str:
        return self.name or self.path.name


@dataclass(frozen=True)
class Dataset:
    """Every labelled image of one or more data folders, with a fingerprint of what was read."""

    roots: tuple[Path, ...]
    samples: tuple[Sample, ...]
    # sha256 over the folders' manifests (or sorted listings, for the folder layout), in order.
    fingerprint: str

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({s.source for s in self.samples}))


@dataclass(frozen=True)
class Split:
    """A train / validation / test partition, and the whole sources held out of all three."""

    train: tuple[Sample, ...]
    validation: tuple[Sample, ...]
    test: tuple[Sample, ...]
    seed: int
    holdout: tuple[Sample, ...] = ()

    def subset(self, name: str) -> tuple[Sample, ...]:
        return {
            "train": self.train,
            "validation": self.validation,
            "test": self.test,
            HOLDOUT: self.holdout,
        }[name]

    @property
    def holdout_sources(self) -> tuple[str, ...]:
        return tuple(sorted({s.source for s in self.holdout}))

    @property
    def evaluated_subsets(self) -> tuple[str, ...]:
        """The subsets scored after training: validation and test, and the held-out sources."""
        return ("validation", "test", HOLDOUT) if self.holdout else ("validation", "test")


def default_data_dirs() -> tuple[Path, ...]:
    """`DERMATRIAGE_DATA_DIR` (folders separated by the path separator, ':' on Unix), else both
    shared dermoscopy folders beside the repository."""
    configured = os.environ.get("DERMATRIAGE_DATA_DIR", "").strip()
    if configured:
        return tuple(Path(part) for part in configured.split(os.pathsep) if part.strip())
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return (shared / "dermoscopy", shared / "dermoscopy-extra")


def default_data_dir() -> Path:
    """The first configured data folder: the one benchmarks and examples draw images from."""
    return default_data_dirs()[0]


def load_dataset(roots: Path | Sequence[Path], *, check_images: bool = True) -> Dataset:
    """Read one or more data folders and check that every listed image can be opened.

    Raises FileNotFoundError for a missing folder and ValueError, naming every problem found,
    for listed files that are absent or unreadable and for a file name used twice (splits are
    saved by file name).
    """
    folders = (roots,) if isinstance(roots, Path) else tuple(roots)
    if not folders:
        raise ValueError("no data folder given; set DERMATRIAGE_DATA_DIR or pass --data")
    missing = [str(root) for root in folders if not root.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"data folder {', '.join(missing)} does not exist; "
            "set DERMATRIAGE_DATA_DIR or pass --data"
        )
    samples: list[Sample] = []
    digests = hashlib.sha256()
    for root in folders:
        manifest = root / "manifest.csv"
        folder_samples, digest = (
            _load_manifest(root, manifest) if manifest.is_file() else _load_folders(root)
        )
        samples.extend(folder_samples)
        digests.update(digest.encode())
    _refuse_duplicate_names(samples)
    if check_images:
        _refuse_unreadable(samples)
    fingerprint = digests.hexdigest() if len(folders) > 1 else digest
    return Dataset(roots=folders, samples=tuple(samples), fingerprint=fingerprint)


def _label_index(label: str, where: str) -> int:
    try:
        return LABELS.index(label.strip().lower())
    except ValueError:
        raise ValueError(f"{where}: label {label!r} is not one of {LABELS}") from None


def _load_manifest(root: Path, manifest: Path) -> tuple[list[Sample], str]:
    images_dir = root / "images" if (root / "images").is_dir() else root
    samples = []
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        absent = {"file", "label"} - set(reader.fieldnames or ())
        if absent:
            raise ValueError(f"{manifest} lacks the column(s) {', '.join(sorted(absent))}")
        for line_number, row in enumerate(reader, start=2):
            where = f"{manifest} line {line_number}"
            if not (row.get("file") or "").strip():
                raise ValueError(f"{where}: no file name")
            samples.append(
                Sample(
                    path=images_dir / row["file"].strip(),
                    label=_label_index(row["label"] or "", where),
                    source=(row.get("source") or "").strip() or root.name,
                    diagnosis=(row.get("diagnosis") or "").strip(),
                    lesion_id=(row.get("lesion_id") or "").strip(),
                    patient_id=(row.get("patient_id") or "").strip(),
                )
            )
    if not samples:
        raise ValueError(f"{manifest} lists no images")
    return samples, hashlib.sha256(manifest.read_bytes()).hexdigest()


def _load_folders(root: Path) -> tuple[list[Sample], str]:
    samples = []
    for label in LABELS:
        folder = root / label
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(
                    Sample(
                        path=path,
                        label=LABELS.index(label),
                        source=root.name,
                        name=f"{label}/{path.name}",
                    )
                )
    if not samples:
        raise ValueError(
            f"{root} has neither manifest.csv nor benign/ and malignant/ folders with images"
        )
    listing = "\n".join(f"{s.label},{s.path.relative_to(root).as_posix()}" for s in samples)
    return samples, hashlib.sha256(listing.encode()).hexdigest()


def _problems(what: str, items: Sequence[str]) -> str:
    listed = "\n  ".join(items[:LISTED_PROBLEMS])
    more = len(items) - LISTED_PROBLEMS
    return f"{len(items)} {what}:\n  {listed}" + (f"\n  ... and {more} more" if more > 0 else "")


def _refuse_duplicate_names(samples: Sequence[Sample]) -> None:
    places: dict[str, list[Path]] = defaultdict(list)
    for sample in samples:
        places[sample.file].append(sample.path)
    repeated = [
        f"{name}: {', '.join(str(path) for path in paths)}"
        for name, paths in places.items()
        if len(paths) > 1
    ]
    if repeated:
        raise ValueError(
            _problems("file names listed more than once (splits are saved by name)", repeated)
        )


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be used as an image, or None. Reads the header only: fast enough to run
    over every image before training."""
    try:
        with Image.open(path) as image:
            image.verify()
    except FileNotFoundError:
        return f"{path}: no such file"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"{path}: not a readable image ({exc})"
    return None


def _refuse_unreadable(samples: Sequence[Sample]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for p in pool.map(_unreadable, (s.path for s in samples)) if p]
    if problems:
        raise ValueError(_problems("listed images that cannot be read", problems))


def image_groups(samples: Sequence[Sample]) -> list[int]:
    """A group number per sample: images that share a lesion id or a patient id, directly or
    through each other, are one group; an image without ids is a group of its own."""
    parent = list(range(len(samples)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_with: dict[tuple[str, str], int] = {}
    for index, sample in enumerate(samples):
        for key in (("lesion", sample.lesion_id), ("patient", sample.patient_id)):
            if not key[1]:
                continue
            if key in first_with:
                parent[find(index)] = find(first_with[key])
            else:
                first_with[key] = index
    return [find(index) for index in range(len(samples))]


def split_dataset(
    dataset: Dataset,
    *,
    seed: int,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    holdout_sources: Iterable[str] = (),
) -> Split:
    """Split deterministically into train, validation and test, and hold whole sources out.

    Stratified by label and source, so each subset mirrors the whole, and grouped by lesion and
    patient (`image_groups`), so that no lesion and no patient appears in two subsets: a model
    that saw a lesion in training would otherwise be scored on a second photograph of it.
    """
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise ValueError("validation and test fractions must be between 0 and 1")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation and test fractions must leave images for training")
    held = set(holdout_sources)
    unknown = held - set(dataset.sources)
    if unknown:
        raise ValueError(
            f"held-out source(s) {', '.join(sorted(unknown))} not in the data; "
            f"its sources are {', '.join(dataset.sources)}"
        )
    if held and held == set(dataset.sources):
        raise ValueError("every source is held out: nothing is left to train on")
    holdout = [s for s in dataset.samples if s.source in held]
    kept = sorted((s for s in dataset.samples if s.source not in held), key=lambda s: s.file)

    members: dict[int, list[Sample]] = defaultdict(list)
    for sample, group_number in zip(kept, image_groups(kept), strict=True):
        members[group_number].append(sample)
    # A group's stratum: its source (the most common, should a patient span two) and whether it
    # holds a malignant image, so that malignant images are spread like the rest.
    strata: dict[tuple[int, str], list[list[Sample]]] = defaultdict(list)
    for group in members.values():
        source = Counter(s.source for s in group).most_common(1)[0][0]
        strata[(max(s.label for s in group), source)].append(group)

    rng = np.random.default_rng(seed)
    subsets: dict[str, list[Sample]] = {name: [] for name in SUBSETS}
    for key in sorted(strata):
        # Groups in a fixed order first, so the split does not depend on how files were listed.
        groups = sorted(strata[key], key=lambda group: group[0].file)
        total = sum(len(group) for group in groups)
        targets = {
            "test": round(test_fraction * total),
            "validation": round(validation_fraction * total),
        }
        filled = dict.fromkeys(targets, 0)
        for position in rng.permutation(len(groups)):
            group = groups[position]
            # A group joins the first subset still short of its share by half the group or
            # more: single images fill each share exactly, large groups overshoot by at most
            # half their size.
            name = next(
                (n for n in ("test", "validation") if filled[n] + len(group) / 2 <= targets[n]),
                "train",
            )
            if name != "train":
                filled[name] += len(group)
            subsets[name].extend(group)
    return Split(
        train=tuple(sorted(subsets["train"], key=lambda s: s.file)),
        validation=tuple(sorted(subsets["validation"], key=lambda s: s.file)),
        test=tuple(sorted(subsets["test"], key=lambda s: s.file)),
        seed=seed,
        holdout=tuple(sorted(holdout, key=lambda s: s.file)),
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
        for subset in (*SUBSETS, HOLDOUT):
            for sample in split.subset(subset):
                writer.writerow([sample.file, LABELS[sample.label], sample.source, subset])


def read_split_csv(path: Path, dataset: Dataset) -> Split:
    """Rebuild a saved split against a dataset (same files, same subsets)."""
    by_file = {sample.file: sample for sample in dataset.samples}
    subsets: dict[str, list[Sample]] = {name: [] for name in (*SUBSETS, HOLDOUT)}
    with path.open(newline="") as handle:
        for line_number, row in enumerate(csv.DictReader(handle), start=2):
            if row["file"] not in by_file:
                raise ValueError(f"{path.name} names {row['file']}, which the data folders lack")
            if row["subset"] not in subsets:
                raise ValueError(
                    f"{path.name} line {line_number}: unknown subset {row['subset']!r}"
                )
            subsets[row["subset"]].append(by_file[row["file"]])
    return Split(
        train=tuple(subsets["train"]),
        validation=tuple(subsets["validation"]),
        test=tuple(subsets["test"]),
        seed=-1,
        holdout=tuple(subsets[HOLDOUT]),
    )


BALANCES = ("label", "label_and_source", "label_and_source_sqrt")


def balanced_sample_weights(samples: Sequence[Sample], *, balance: str) -> np.ndarray:
    """Per-image loss weights, averaging 1, that even out groups of images.

    - "label": each label weighs the same in the loss.
    - "label_and_source": each (label, source) group weighs the same. The sources differ in
      malignant share, so an unweighted model profits from recognising the source; with every
      group equal, each source is half benign and half malignant in the loss and knowing the
      source is worth nothing. A small group (a few dozen malignant images in a source of
      thousands) then carries as much weight as a large one, each image a great deal.
    - "label_and_source_sqrt": each image weighs 1 / sqrt(its group's size), halfway between:
      each group weighs the square root of its size, so the labels within a source are brought
      closer to even (the source says less about the label than unweighted, not nothing) and a
      small group's few images are not blown up as far.
    """
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {', '.join(BALANCES)}, not {balance!r}")
    by_source = balance != "label"
    keys = [(s.label, s.source) if by_source else (s.label, "") for s in samples]
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for key in keys:
        counts[key] += 1
    if {label for label, _ in counts} != set(range(len(LABELS))):
        raise ValueError(f"training subset lacks a class: groups {dict(counts)}")
    power = 0.5 if balance == "label_and_source_sqrt" else 1.0
    weights = np.array([counts[key] ** -power for key in keys], dtype=np.float64)
    return (weights * len(weights) / weights.sum()).astype(np.float32)
