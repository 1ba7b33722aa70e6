from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from inference import Classifier
from inference.cli import main, score_files


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    Image.new("RGB", (120, 90), (170, 110, 90)).save(tmp_path / "a.jpg")
    Image.new("RGBA", (64, 64), (40, 30, 20, 128)).save(tmp_path / "b.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:50])
    return tmp_path


def test_every_file_gets_a_row_and_bad_ones_get_an_error(
    classifier: Classifier, folder: Path
) -> None:
    rows = {Path(row["file"]).name: row for row in score_files(classifier, [str(folder)])}
    assert set(rows) == {"a.jpg", "b.png", "notes.txt", "truncated.jpg"}
    for good in ("a.jpg", "b.png"):
        assert rows[good]["error"] == ""
        assert 0 <= rows[good]["probability"] <= 1
    for bad in ("notes.txt", "truncated.jpg"):
        assert rows[bad]["probability"] is None
        assert rows[bad]["error"]


def test_the_csv_output_has_one_row_per_file_and_a_failing_exit_code(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["predict", str(folder / "a.jpg"), str(folder / "notes.txt")])
    out = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert [Path(r["file"]).name for r in rows] == ["a.jpg", "notes.txt"]
    assert rows[0]["high_risk"] in ("True", "False")
    assert rows[1]["error"].startswith("not a readable image")
    assert code == 1
    assert "not a medical diagnosis" in out.err


def test_the_json_output_carries_the_disclaimer(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(folder / "a.jpg"), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "not a medical diagnosis" in document["disclaimer"]
    assert document["predictions"][0]["label"] in ("benign", "malignant")


def test_a_missing_model_is_a_clear_error(folder: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inference",
            "predict",
            str(folder / "a.jpg"),
            "--model",
            str(tmp_path / "no-model"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
