from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import (
    Sample,
    balanced_sample_weights,
    load_dataset,
    load_pixels,
    read_split_csv,
    split_dataset,
    write_split_csv,
)


def test_it_reads_a_manifest_dataset(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    assert len(dataset.samples) == 48
    assert Counter(s.source for s in dataset.samples) == {"small-source": 24, "large-source": 24}
    assert dataset.labels.sum() == 24
    assert len(dataset.fingerprint) == 64


def test_it_reads_a_plain_benign_malignant_folder_layout(tmp_path: Path) -> None:
    for label, count in (("benign", 3), ("malignant", 2)):
        (tmp_path / label).mkdir()
        for index in range(count):
            Image.new("RGB", (8, 8)).save(tmp_path / label / f"{index}.jpg")
    (tmp_path / "benign" / "notes.txt").write_text("ignored")
    dataset = load_dataset(tmp_path)
    assert [s.label for s in dataset.samples] == [0, 0, 0, 1, 1]
    assert {s.source for s in dataset.samples} == {tmp_path.name}


def test_it_rejects_an_unknown_label_with_the_line_number(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("file,label,source\na.jpg,benign,x\nb.jpg,maybe,x\n")
    with pytest.raises(ValueError, match=r"line 3.*'maybe'"):
        load_dataset(tmp_path)


def test_it_explains_a_missing_data_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="DERMATRIAGE_DATA_DIR"):
        load_dataset(tmp_path / "absent")


def test_the_split_is_deterministic_for_a_seed_and_differs_for_another(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    first = split_dataset(dataset, seed=7, validation_fraction=0.25, test_fraction=0.25)
    again = split_dataset(dataset, seed=7, validation_fraction=0.25, test_fraction=0.25)
    other = split_dataset(dataset, seed=8, validation_fraction=0.25, test_fraction=0.25)
    assert first == again
    assert first.test != other.test


def test_the_split_is_stratified_by_label_and_source_and_disjoint(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    split = split_dataset(dataset, seed=1, validation_fraction=0.25, test_fraction=0.25)
    files = [s.file for name in ("train", "validation", "test") for s in split.subset(name)]
    assert len(files) == len(set(files)) == len(dataset.samples)
    for name, expected in (("train", 6), ("validation", 3), ("test", 3)):
        strata = Counter((s.label, s.source) for s in split.subset(name))
        assert set(strata.values()) == {expected}, (name, strata)


def test_a_saved_split_reads_back_identically(tiny_dataset: Path, tmp_path: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    split = split_dataset(dataset, seed=3)
    write_split_csv(split, tmp_path / "split.csv")
    restored = read_split_csv(tmp_path / "split.csv", dataset)
    for name in ("train", "validation", "test"):
        assert restored.subset(name) == split.subset(name)


def test_pixels_have_the_model_input_shape(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    pixels = load_pixels(dataset.samples[:4], input_size=32, effective_resolution=24)
    assert pixels.shape == (4, 32, 32, 3)
    assert pixels.dtype == np.uint8


def test_sample_weights_make_every_label_and_source_group_weigh_the_same() -> None:
    samples = [
        Sample(Path(f"{i}.jpg"), label, source)
        for i, (label, source) in enumerate(
            [(0, "a")] * 6 + [(1, "a")] * 2 + [(0, "b")] * 3 + [(1, "b")] * 1
        )
    ]
    weights = balanced_sample_weights(samples, by_source=True)
    totals: dict[tuple[int, str], float] = {}
    for sample, weight in zip(samples, weights, strict=True):
        totals[(sample.label, sample.source)] = (
            totals.get((sample.label, sample.source), 0) + weight
        )
    assert len(set(np.round(list(totals.values()), 6))) == 1
    assert weights.sum() == pytest.approx(len(samples))


def test_label_only_weights_ignore_the_source_and_need_both_classes() -> None:
    samples = [
        Sample(Path("a.jpg"), 0, "a"),
        Sample(Path("b.jpg"), 0, "b"),
        Sample(Path("c.jpg"), 1, "b"),
    ]
    weights = balanced_sample_weights(samples, by_source=False)
    assert weights[0] == weights[1] == pytest.approx(weights[2] / 2)
    with pytest.raises(ValueError, match="lacks a class"):
        balanced_sample_weights(samples[:2], by_source=False)
