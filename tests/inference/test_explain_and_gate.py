"""The heatmap and the input gate that come out of every scoring pass."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference import Classifier, ModelArtifactError, load_classifier
from inference.artifact import file_sha256
from inference.explain import activation_maps, overlay_png
from inference.gate import GATE_FILE, GateReason, InputGate


def _plain_skin(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    skin = np.array([214.0, 160.0, 130.0])
    image = np.broadcast_to(skin, (size, size, 3)) + rng.normal(0.0, 3.0, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _lesion_on_skin(
    size: int, centre: tuple[float, float], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Plain skin with one irregular pigmented lesion; the image and the lesion's mask."""
    image = _plain_skin(size).astype(np.float64)
    rows, cols = np.mgrid[0:size, 0:size] / size
    angle = np.arctan2(rows - centre[1], cols - centre[0])
    wobble = radius * (1.0 + 0.15 * np.cos(3 * angle) + 0.1 * np.sin(5 * angle))
    distance = np.hypot(cols - centre[0], rows - centre[1])
    mask = distance < wobble
    core = np.clip(1.0 - distance / wobble, 0.0, 1.0)
    pigment = np.array([95.0, 55.0, 40.0])[None, None, :] * (1.0 - 0.5 * core[..., None])
    image[mask] = pigment[mask]
    return np.clip(image, 0, 255).astype(np.uint8), mask


def test_the_heatmap_of_a_lesion_on_plain_skin_falls_on_the_lesion(
    classifier: Classifier,
) -> None:
    size = classifier.metadata.input_size
    image, mask = _lesion_on_skin(size, centre=(0.3, 0.32), radius=0.16)

    (prediction,) = classifier.predict([image])

    heatmap = prediction.heatmap
    assert heatmap is not None
    assert heatmap.min() >= 0.0
    assert heatmap.max() == pytest.approx(1.0)
    cells = heatmap.shape[0]
    # The lesion's share of each map cell.
    cell_mask = mask.reshape(cells, size // cells, cells, size // cells).mean(axis=(1, 3))
    hottest = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert cell_mask[hottest] > 0, f"hottest cell {hottest} lies off the lesion"
    on_lesion = heatmap[cell_mask > 0.5].mean()
    off_lesion = heatmap[cell_mask == 0].mean()
    assert on_lesion > 2 * off_lesion, (on_lesion, off_lesion)


def test_every_prediction_carries_its_pooled_features(classifier: Classifier) -> None:
    size = classifier.metadata.input_size
    predictions = classifier.predict([_plain_skin(size, seed) for seed in range(2)])
    first, second = (prediction.features for prediction in predictions)
    assert first is not None
    assert second is not None
    assert first.ndim == 1
    assert first.shape == second.shape
    assert not np.array_equal(first, second)


def test_activation_maps_weigh_each_position_by_how_much_it_moved_the_logit() -> None:
    feature_maps = np.zeros((1, 2, 2, 2))
    feature_maps[0, 0, 0] = [1.0, 0.0]  # raises the logit by 2
    feature_maps[0, 1, 1] = [0.0, 1.0]  # lowers it by 1
    maps = activation_maps(feature_maps, np.array([2.0, -1.0]))
    np.testing.assert_allclose(maps[0], [[1.0, 0.0], [0.0, 0.5]])
    # A map with nothing in it stays all zero rather than dividing by zero.
    assert not activation_maps(np.zeros((1, 2, 2, 2)), np.ones(2)).any()


def test_the_overlay_keeps_the_images_aspect_ratio_and_is_clear_where_cool() -> None:
    heatmap = np.zeros((7, 7), np.float32)
    heatmap[3, 3] = 1.0
    overlay = Image.open(io.BytesIO(overlay_png(heatmap, width=600, height=400)))
    assert overlay.mode == "RGBA"
    assert overlay.size == (256, 171)
    alpha = np.asarray(overlay)[..., 3]
    assert alpha[0, 0] == 0
    assert alpha[85, 128] > 150


REFERENCES = np.eye(3)


def _gate(**limits: float) -> InputGate:
    values = {
        "max_distance": 10.0,
        "max_neighbour_distance": 1.5,
        "min_sharpness": 1e-4,
        "max_sharpness": 0.02,
        "min_brightness": 0.1,
        "max_brightness": 0.9,
        "max_flatness": 0.6,
    }
    values.update(limits)
    return InputGate(
        feature_mean=np.zeros(3), whitening=np.eye(3), reference_features=REFERENCES, **values
    )


def test_the_gate_says_why_it_turns_an_image_away() -> None:
    rng = np.random.default_rng(0)
    # Skin-like texture: gentle random steps, neither flat nor noise.
    textured = (128 + np.cumsum(rng.normal(0, 2.0, (1, 32, 32, 1)), axis=2)).clip(0, 255)
    textured = np.repeat(textured, 3, axis=3).astype(np.uint8)
    dark = np.full((1, 32, 32, 3), 5, np.uint8)
    bright = np.full((1, 32, 32, 3), 250, np.uint8)
    flat = np.full((1, 32, 32, 3), 128, np.uint8)
    noise = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    # A page: white paper, flat, with one sharp line of text across it.
    page = np.full((1, 32, 32, 3), 200, np.uint8)
    page[:, 16, 4:28] = 20
    pixels = np.concatenate([textured, dark, bright, flat, textured, textured, noise, page])
    features = np.tile([[1.0, 0.1, 0.1]], (8, 1))  # near the first training image
    features[4] = [20.0, 0.0, 0.0]  # far from the training images' mean
    features[5] = [-1.0, -1.0, -1.0]  # near the mean, but unlike any training image

    assert _gate().reasons(pixels, features) == [
        None,
        GateReason.TOO_DARK,
        GateReason.TOO_BRIGHT,
        GateReason.TOO_BLURRED,
        GateReason.NOT_DERMOSCOPIC,
        GateReason.NOT_DERMOSCOPIC,
        GateReason.NOT_DERMOSCOPIC,
        GateReason.NOT_DERMOSCOPIC,
    ]
    # Foreign features are named as such, whatever else is wrong with the image.
    assert _gate().reasons(flat, np.array([[20.0, 0.0, 0.0]])) == [GateReason.NOT_DERMOSCOPIC]


def test_the_neighbour_distance_is_to_the_kth_nearest_training_image() -> None:
    gate = _gate()
    # Fewer references than NEIGHBOURS: the farthest of them counts.
    np.testing.assert_allclose(gate.neighbour_distances(np.array([[2.0, 0.0, 0.0]])), [1.0])
    one = InputGate(**{**gate.__dict__, "reference_features": np.array([[0.0, 1.0, 0.0]])})
    np.testing.assert_allclose(one.neighbour_distances(np.array([[0.0, 5.0, 0.0]])), [0.0])


def test_the_gate_measures_mahalanobis_distance() -> None:
    gate = _gate()
    gate = InputGate(
        **{
            **gate.__dict__,
            "feature_mean": np.array([1.0, 0.0, 0.0]),
            # The first feature varies twice as much as the others.
            "whitening": np.diag([0.5, 1.0, 1.0]),
        }
    )
    np.testing.assert_allclose(gate.distances(np.array([[3.0, 0.0, 0.0], [1.0, 2.0, 0.0]])), [1, 2])


def test_the_gate_round_trips_through_its_file(tmp_path: Path) -> None:
    gate = _gate(max_distance=42.5, max_flatness=0.25)
    gate.save(tmp_path / GATE_FILE)
    loaded = InputGate.load(tmp_path / GATE_FILE)
    assert loaded.limits() == gate.limits()
    np.testing.assert_array_equal(loaded.whitening, gate.whitening)
    np.testing.assert_array_equal(loaded.reference_features, gate.reference_features)


def _with_gate(artifact: Path, gate: InputGate, *, sha256: str | None = None) -> None:
    gate.save(artifact / GATE_FILE)
    path = artifact / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["input_gate"] = {"sha256": sha256 or file_sha256(artifact / GATE_FILE)}
    path.write_text(json.dumps(metadata))


@pytest.fixture
def artifact_copy(served_model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(served_model_dir, copy)
    (copy / GATE_FILE).unlink(missing_ok=True)
    return copy


def test_a_gate_that_does_not_match_its_recorded_digest_is_refused(artifact_copy: Path) -> None:
    _with_gate(artifact_copy, _gate(), sha256="0" * 64)
    with pytest.raises(ModelArtifactError, match="sha256"):
        load_classifier(artifact_copy, backend="keras")


def test_a_gate_for_other_features_is_refused_at_load(artifact_copy: Path) -> None:
    _with_gate(artifact_copy, _gate())  # three features; the model has many more
    with pytest.raises(ModelArtifactError, match="input gate expects 3 features"):
        load_classifier(artifact_copy, backend="keras")
