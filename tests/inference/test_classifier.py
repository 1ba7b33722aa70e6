from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference import Classifier, ImageDecodeError, ModelArtifactError, load_classifier
from inference.artifact import read_metadata


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_it_scores_bytes_paths_and_arrays_alike(classifier: Classifier, tmp_path: Path) -> None:
    data = _jpeg((180, 120, 100))
    path = tmp_path / "lesion.jpg"
    path.write_bytes(data)
    array = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    from_bytes, from_path, from_array = classifier.predict([data, path, array])

    assert from_bytes == from_path
    assert from_array.probability == pytest.approx(from_bytes.probability, abs=1e-6)
    for result in (from_bytes, from_path, from_array):
        assert 0.0 <= result.probability <= 1.0
        above = result.probability >= classifier.threshold
        # An image the input gate turned away is never called high risk, whatever its score.
        assert result.high_risk == (above and result.gate_reason is None)
        assert result.label == ("malignant" if above else "benign")
        assert result.model_version == classifier.version


def test_a_batch_scores_each_image_as_it_would_alone(classifier: Classifier) -> None:
    images = [_jpeg((200, 150, 130)), _jpeg((60, 40, 30)), _jpeg((120, 80, 90), (64, 64))]
    together = classifier.predict(images)
    alone = [classifier.predict([image])[0] for image in images]
    for joint, single in zip(together, alone, strict=True):
        assert joint.probability == pytest.approx(single.probability, abs=1e-5)


def test_it_applies_the_artifact_temperature(classifier: Classifier) -> None:
    pixels = classifier.preprocess([_jpeg((90, 60, 50))])
    logit = classifier.logits(pixels)[0]
    expected = 1 / (1 + np.exp(-logit / classifier.metadata.temperature))
    assert classifier.probabilities(pixels)[0] == pytest.approx(expected)


def test_it_names_the_stand_in_backbone_honestly(classifier: Classifier) -> None:
    assert "Lite0" in classifier.display_name
    assert "B0" in classifier.display_name


def test_an_undecodable_image_raises_a_clear_error(classifier: Classifier) -> None:
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        classifier.predict([b"definitely not an image"])


@pytest.fixture
def artifact_copy(served_model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(served_model_dir, copy)
    return copy


def test_a_corrupt_model_file_is_refused(artifact_copy: Path) -> None:
    model_file = artifact_copy / read_metadata(artifact_copy).model_file
    model_file.write_bytes(model_file.read_bytes()[:1000])
    with pytest.raises(ModelArtifactError, match="sha256"):
        load_classifier(artifact_copy)


def test_a_missing_artifact_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="does not exist"):
        load_classifier(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("threshold"), "lacks required keys: threshold"),
        (lambda m: m.update(threshold=1.5), "outside"),
        (lambda m: m.update(temperature=0), "temperature must be positive"),
        (lambda m: m.update(format_version=99), "format_version"),
        (lambda m: m.update(model_file="../elsewhere.keras"), "file name inside"),
    ],
)
def test_bad_metadata_is_refused_with_a_reason(artifact_copy: Path, change, message: str) -> None:
    path = artifact_copy / "metadata.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))
    with pytest.raises(ModelArtifactError, match=message):
        load_classifier(artifact_copy)


def test_metadata_that_is_not_json_is_refused(artifact_copy: Path) -> None:
    (artifact_copy / "metadata.json").write_text("{not json")
    with pytest.raises(ModelArtifactError, match="not valid JSON"):
        load_classifier(artifact_copy)


def test_the_environment_chooses_the_default_artifact(
    artifact_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERMATRIAGE_MODEL_DIR", str(artifact_copy / "absent"))
    with pytest.raises(ModelArtifactError, match="absent"):
        load_classifier()
