from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.training.conftest import write_tiny_dataset
from training.data import (
    HOLDOUT,
    Sample,
    balanced_sample_weights,
    default_data_dirs,
    image_groups,
    load_dataset,
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


def test_sample_weights_make_every_label_and_source_group_weigh_the_same() -> None:
    samples = [
        Sample(Path(f"{i}.jpg"), label, source)
        for i, (label, source) in enumerate(
            [(0, "a")] * 6 + [(1, "a")] * 2 + [(0, "b")] * 3 + [(1, "b")] * 1
        )
    ]
    weights = balanced_sample_weights(samples, balance="label_and_source")
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
    weights = balanced_sample_weights(samples, balance="label")
    assert weights[0] == weights[1] == pytest.approx(weights[2] / 2)
    with pytest.raises(ValueError, match="lacks a class"):
        balanced_sample_weights(samples[:2], balance="label")


def test_square_root_weights_even_out_labels_within_each_source_less_steeply() -> None:
    # Source "a": 90 benign, 10 malignant; source "b": 10 and 10.
    samples = [
        Sample(Path(f"{source}{label}{index}.jpg"), label, source)
        for source, counts in (("a", (90, 10)), ("b", (10, 10)))
        for label, count in enumerate(counts)
        for index in range(count)
    ]
    weights = balanced_sample_weights(samples, balance="label_and_source_sqrt")
    by_group: dict[tuple[str, int], float] = {}
    for sample, weight in zip(samples, weights, strict=True):
        by_group[(sample.source, sample.label)] = float(weight)
    assert weights.mean() == pytest.approx(1.0)
    # One malignant image of "a" weighs three benign ones (sqrt of 90/10), not nine.
    assert by_group[("a", 1)] / by_group[("a", 0)] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="balance must be one of"):
        balanced_sample_weights(samples, balance="loudest")


def _write_manifest(root: Path, rows: list[dict[str, str]], *, make_files: bool = True) -> Path:
    (root / "images").mkdir(parents=True)
    columns = ["file", "label", "source", "lesion_id", "patient_id"]
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join(row.get(column, "") for column in columns))
        if make_files:
            Image.new("RGB", (8, 8), (200, 150, 120)).save(root / "images" / row["file"])
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def test_it_reads_several_folders_keeping_their_sources_and_ids(tmp_path: Path) -> None:
    first = write_tiny_dataset(tmp_path / "first")
    second = _write_manifest(
        tmp_path / "second",
        [
            {"file": "a.jpg", "label": "malignant", "source": "clinic", "lesion_id": "L1"},
            {"file": "b.jpg", "label": "benign", "source": "clinic", "patient_id": "P7"},
        ],
    )
    dataset = load_dataset([first, second])

    assert len(dataset.samples) == 50
    assert dataset.roots == (first, second)
    assert dataset.sources == ("clinic", "large-source", "small-source")
    by_file = {s.file: s for s in dataset.samples}
    assert (by_file["a.jpg"].lesion_id, by_file["a.jpg"].patient_id) == ("L1", "")
    assert (by_file["b.jpg"].lesion_id, by_file["b.jpg"].patient_id) == ("", "P7")
    # The fingerprint covers every folder: a change to either changes it.
    assert dataset.fingerprint != load_dataset(first).fingerprint


def test_the_data_setting_is_a_list_of_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERMATRIAGE_DATA_DIR", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert default_data_dirs() == (tmp_path / "a", tmp_path / "b")
    monkeypatch.delenv("DERMATRIAGE_DATA_DIR")
    assert [path.name for path in default_data_dirs()] == ["dermoscopy", "dermoscopy-extra"]


def test_it_names_a_missing_folder_before_anything_else(tmp_path: Path) -> None:
    present = write_tiny_dataset(tmp_path / "present")
    with pytest.raises(FileNotFoundError, match=r"absent does not exist"):
        load_dataset([present, tmp_path / "absent"])


def test_it_names_every_listed_file_that_is_absent_or_unreadable(tmp_path: Path) -> None:
    root = _write_manifest(
        tmp_path / "data",
        [
            {"file": "fine.jpg", "label": "benign", "source": "x"},
            {"file": "broken.jpg", "label": "benign", "source": "x"},
            {"file": "gone.jpg", "label": "malignant", "source": "x"},
        ],
    )
    (root / "images" / "broken.jpg").write_bytes(b"not an image at all")
    (root / "images" / "gone.jpg").unlink()

    with pytest.raises(ValueError, match="2 listed images that cannot be read") as raised:
        load_dataset(root)
    message = str(raised.value)
    assert "broken.jpg: not a readable image" in message
    assert "gone.jpg: no such file" in message
    assert "fine.jpg" not in message


def test_it_refuses_a_file_name_listed_in_two_folders(tmp_path: Path) -> None:
    rows = [{"file": "same.jpg", "label": "benign", "source": "x"}]
    first = _write_manifest(tmp_path / "first", rows)
    second = _write_manifest(tmp_path / "second", rows)
    with pytest.raises(ValueError, match="1 file names listed more than once") as raised:
        load_dataset([first, second])
    assert str(first / "images" / "same.jpg") in str(raised.value)
    assert str(second / "images" / "same.jpg") in str(raised.value)


def test_images_of_one_lesion_or_one_patient_form_one_group(tmp_path: Path) -> None:
    def sample(name: str, lesion: str = "", patient: str = "") -> Sample:
        return Sample(tmp_path / name, 0, "x", lesion_id=lesion, patient_id=patient)

    samples = [
        sample("a", lesion="L1"),
        sample("b", lesion="L1", patient="P1"),
        sample("c", patient="P1"),
        sample("d", patient="P2"),
        sample("e"),
        sample("f"),
    ]
    groups = image_groups(samples)
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4], groups[5]}) == 4


def test_no_lesion_and_no_patient_spans_two_subsets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for index in range(400):
        malignant = rng.random() < 0.3
        rows.append(
            {
                "file": f"img{index:04d}.jpg",
                "label": "malignant" if malignant else "benign",
                "source": "screening" if index % 2 else "clinic",
                # Many images per patient in one source, a few per lesion in the other.
                "patient_id": f"P{rng.integers(12)}" if index % 2 else "",
                "lesion_id": f"L{rng.integers(60)}" if not index % 2 else "",
            }
        )
    dataset = load_dataset(_write_manifest(tmp_path / "data", rows), check_images=False)
    split = split_dataset(dataset, seed=5, validation_fraction=0.2, test_fraction=0.2)

    subset_of: dict[str, set[str]] = {}
    for name in ("train", "validation", "test"):
        for sample in split.subset(name):
            for key in (sample.lesion_id, sample.patient_id):
                if key:
                    subset_of.setdefault(key, set()).add(name)
    assert subset_of
    assert all(len(names) == 1 for names in subset_of.values())
    assert sum(len(split.subset(n)) for n in ("train", "validation", "test")) == 400
    # Grouping costs some precision in the subsets' sizes, not their order of magnitude.
    for name in ("validation", "test"):
        assert 40 <= len(split.subset(name)) <= 120, (name, len(split.subset(name)))


def test_a_held_out_source_is_in_no_other_subset_and_saved_as_such(
    tmp_path: Path,
) -> None:
    first = write_tiny_dataset(tmp_path / "first")
    unseen = write_tiny_dataset(
        tmp_path / "unseen", per_class_and_source=3, sources=(("unseen", 48),)
    )
    dataset = load_dataset([first, unseen])
    split = split_dataset(dataset, seed=2, holdout_sources=["unseen"])

    assert {s.source for s in split.holdout} == {"unseen"}
    assert len(split.holdout) == 6
    assert all(
        s.source != "unseen" for name in ("train", "validation", "test") for s in split.subset(name)
    )
    assert split.evaluated_subsets == ("validation", "test", HOLDOUT)
    write_split_csv(split, tmp_path / "split.csv")
    assert read_split_csv(tmp_path / "split.csv", dataset).holdout == split.holdout


def test_it_refuses_to_hold_out_an_unknown_source_or_every_source(tiny_dataset: Path) -> None:
    dataset = load_dataset(tiny_dataset)
    with pytest.raises(ValueError, match="nowhere not in the data"):
        split_dataset(dataset, seed=0, holdout_sources=["nowhere"])
    with pytest.raises(ValueError, match="nothing is left to train on"):
        split_dataset(dataset, seed=0, holdout_sources=["small-source", "large-source"])
