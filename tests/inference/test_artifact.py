"""The artifact's metadata schema: one reader and one writer, in inference.artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.artifact import METADATA_FILE, read_metadata, write_metadata
from inference.errors import ModelArtifactError


def _document(served_model_dir: Path) -> dict[str, object]:
    document = json.loads((served_model_dir / METADATA_FILE).read_text())
    assert isinstance(document, dict)
    return document


def test_written_metadata_reads_back_as_written(served_model_dir: Path, tmp_path: Path) -> None:
    document = {**_document(served_model_dir), "colour_constancy": "shades_of_grey"}
    written = write_metadata(tmp_path / "artifact", document)

    read = read_metadata(tmp_path / "artifact")
    assert read == written
    assert read.raw == document
    assert read.preprocessing.colour_constancy == "shades_of_grey"
    assert read.preprocessing.input_size == document["input_size"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("temperature"), "lacks required keys: temperature"),
        (lambda d: d.update(colour_constancy="sepia"), "colour_constancy must be one of"),
        (lambda d: d.update(threshold=2.0), "outside"),
    ],
)
def test_metadata_that_inference_would_refuse_is_never_written(
    served_model_dir: Path, tmp_path: Path, change: object, message: str
) -> None:
    document = _document(served_model_dir)
    change(document)  # type: ignore[operator]
    with pytest.raises(ModelArtifactError, match=message):
        write_metadata(tmp_path / "artifact", document)
    assert not (tmp_path / "artifact" / METADATA_FILE).exists()
