"""The LiteRT fast path: same answers as Keras, a cache that is checked, a Keras fallback."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference import (
    BackendUnavailableError,
    Classifier,
    ConfigurationError,
    backends,
    load_classifier,
)
from inference.artifact import LOGIT_LAYER, POOLING_LAYER, read_metadata
from inference.backends import FlatbufferCache, interpreter_threads
from inference.cli import main
from inference.synthetic import synthetic_lesion

TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def _fresh_cache_and_default_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMATRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DERMATRIAGE_INFERENCE_BACKEND", raising=False)
    monkeypatch.delenv("DERMATRIAGE_INFERENCE_THREADS", raising=False)


@pytest.fixture(scope="module")
def served_pair(
    served_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Classifier, Classifier]:
    """The served model on the fast path and on Keras, loaded once for this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DERMATRIAGE_CACHE_DIR", str(tmp_path_factory.mktemp("served-cache")))
        fast = load_classifier(served_model_dir, backend="tflite")
        keras = load_classifier(served_model_dir, backend="keras")
    return fast, keras


def _jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _lesion_uploads() -> list[bytes | np.ndarray]:
    """Lesion-like images of the sizes and kinds that reach the classifier."""
    sizes = [(256, 256), (180, 180), (768, 1024), (480, 640), (200, 300), (1500, 1100)]
    uploads: list[bytes | np.ndarray] = [
        _jpeg(synthetic_lesion(seed, height=h, width=w)) for seed, (h, w) in enumerate(sizes)
    ]
    uploads.append(synthetic_lesion(40, height=224, width=224))
    uploads.append(np.full((64, 64, 3), (190, 140, 120), dtype=np.uint8))
    return uploads


def test_the_served_model_loads_on_the_fast_path(
    served_pair: tuple[Classifier, Classifier],
) -> None:
    fast, keras = served_pair
    assert fast.backend == "tflite"
    assert keras.backend == "keras"


def test_the_fast_path_gives_the_keras_probabilities_on_lesion_like_images(
    served_pair: tuple[Classifier, Classifier],
) -> None:
    fast, keras = served_pair
    uploads = _lesion_uploads()
    fast_results = fast.predict(uploads)
    keras_results = keras.predict(uploads)
    for fast_result, keras_result in zip(fast_results, keras_results, strict=True):
        assert fast_result.probability == pytest.approx(keras_result.probability, abs=TOLERANCE)
        assert fast_result.model_version == keras_result.model_version


@pytest.mark.parametrize("batch_size", [1, 2, 7, 17, 33])
def test_batches_of_any_size_match_keras_image_by_image(
    served_pair: tuple[Classifier, Classifier], batch_size: int
) -> None:
    fast, keras = served_pair
    size = fast.metadata.input_size
    pixels = np.stack(
        [synthetic_lesion(100 + seed, height=size, width=size) for seed in range(batch_size)]
    )
    fast_probabilities = fast.probabilities(pixels)
    assert fast_probabilities.shape == (batch_size,)
    np.testing.assert_allclose(fast_probabilities, keras.probabilities(pixels), atol=TOLERANCE)
    # Each image scores as it would alone, wherever the interpreter's chunks fall.
    np.testing.assert_allclose(fast.probabilities(pixels[-1:]), fast_probabilities[-1:], atol=1e-6)


def test_an_empty_batch_scores_nothing(served_pair: tuple[Classifier, Classifier]) -> None:
    fast, _ = served_pair
    size = fast.metadata.input_size
    assert fast.predict_pixels(np.zeros((0, size, size, 3), dtype=np.uint8)) == []


def _tiny_artifact(folder: Path, *, seed: int) -> Path:
    """A small but real artifact: a conv net whose weights (and so sha256) depend on `seed`."""
    import keras

    size = 32
    inputs = keras.Input((size, size, 3), name="image")
    features = keras.layers.Rescaling(1 / 255)(inputs)
    features = keras.layers.Conv2D(
        8, 3, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=seed)
    )(features)
    # Named as every served model's head is: inference reads the maps the pooling takes.
    features = keras.layers.GlobalAveragePooling2D(name=POOLING_LAYER)(features)
    logit = keras.layers.Dense(
        1,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1),
        bias_initializer=keras.initializers.Constant(float(seed)),
        name=LOGIT_LAYER,
    )(features)
    folder.mkdir(parents=True)
    model_path = folder / "model.keras"
    keras.Model(inputs, logit).save(model_path)
    metadata = {
        "format_version": 1,
        "name": "tiny",
        "version": f"tiny-{seed}",
        "architecture": "tiny_conv",
        "display_name": "Tiny test network",
        "model_file": "model.keras",
        "model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "input_size": size,
        "effective_resolution": size,
        "labels": ["benign", "malignant"],
        "threshold": 0.5,
        "temperature": 1.0,
        "test_time_augmentation": True,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


@pytest.fixture(scope="module")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different tiny models, so that cache keys and fallbacks can be tested quickly."""
    root = tmp_path_factory.mktemp("tiny")
    return _tiny_artifact(root / "first", seed=1), _tiny_artifact(root / "second", seed=2)


def _tiny_pixels() -> np.ndarray:
    return np.stack([synthetic_lesion(seed, height=32, width=32) for seed in range(5)])


def _cache_entry(artifact: Path, cache_dir: Path) -> tuple[Path, Path]:
    return FlatbufferCache(cache_dir).paths(read_metadata(artifact))


def test_the_cache_is_keyed_by_the_model_sha256(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = tiny_artifacts
    first_fast = load_classifier(first)
    second_fast = load_classifier(second)

    first_flatbuffer, _ = _cache_entry(first, tmp_path / "cache")
    second_flatbuffer, _ = _cache_entry(second, tmp_path / "cache")
    assert first_flatbuffer.is_file()
    assert second_flatbuffer.is_file()
    assert first_flatbuffer != second_flatbuffer
    assert read_metadata(second).model_sha256 in second_flatbuffer.name

    pixels = _tiny_pixels()
    second_keras = load_classifier(second, backend="keras")
    assert (first_fast.backend, second_fast.backend) == ("tflite", "tflite")
    np.testing.assert_allclose(
        second_fast.probabilities(pixels), second_keras.probabilities(pixels), atol=TOLERANCE
    )
    # Far beyond the tolerance: the second model did not run on the first one's flatbuffer.
    assert np.abs(second_fast.probabilities(pixels) - first_fast.probabilities(pixels)).min() > 0.01


def test_a_corrupt_cached_flatbuffer_is_detected_and_rebuilt(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = tiny_artifacts
    load_classifier(first)
    flatbuffer_path, manifest_path = _cache_entry(first, tmp_path / "cache")
    good = flatbuffer_path.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = b"\xff" * 64
    flatbuffer_path.write_bytes(bytes(damaged))

    with caplog.at_level(logging.WARNING, logger="inference.backends"):
        classifier = load_classifier(first)

    assert classifier.backend == "tflite"
    assert "corrupt cache entry" in caplog.text
    rebuilt = flatbuffer_path.read_bytes()
    manifest = json.loads(manifest_path.read_text())
    assert manifest["flatbuffer_sha256"] == hashlib.sha256(rebuilt).hexdigest()
    keras = load_classifier(first, backend="keras")
    np.testing.assert_allclose(
        classifier.probabilities(_tiny_pixels()),
        keras.probabilities(_tiny_pixels()),
        atol=TOLERANCE,
    )


def test_a_consistent_cache_entry_is_still_checked_against_keras(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = tiny_artifacts
    cache = FlatbufferCache(tmp_path / "cache")
    load_classifier(second)
    # Another model's flatbuffer filed under this model's key, with a manifest that agrees.
    impostor = cache.read(read_metadata(second))
    assert impostor is not None
    cache.write(read_metadata(first), impostor)

    with caplog.at_level(logging.WARNING, logger="inference.backends"):
        classifier = load_classifier(first)

    assert classifier.backend == "tflite"
    assert "Rebuilding cached flatbuffer" in caplog.text
    assert cache.read(read_metadata(first)) != impostor
    keras = load_classifier(first, backend="keras")
    np.testing.assert_allclose(
        classifier.probabilities(_tiny_pixels()),
        keras.probabilities(_tiny_pixels()),
        atol=TOLERANCE,
    )


def test_a_flatbuffer_that_disagrees_with_keras_falls_back_to_keras(
    tiny_artifacts: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = tiny_artifacts
    load_classifier(second)
    wrong = FlatbufferCache(backends.cache_root()).read(read_metadata(second))
    monkeypatch.setattr(backends, "convert_to_flatbuffer", lambda model, input_size: wrong)

    with caplog.at_level(logging.WARNING, logger="inference.classifier"):
        classifier = load_classifier(first)

    assert classifier.backend == "keras"
    assert "differ from the Keras model's" in caplog.text
    with pytest.raises(BackendUnavailableError, match="tflite backend"):
        load_classifier(first, backend="tflite")


def test_a_failed_conversion_falls_back_to_keras(
    tiny_artifacts: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(model: object, input_size: int) -> bytes:
        raise RuntimeError("op not supported")

    monkeypatch.setattr(backends, "convert_to_flatbuffer", refuse)
    with caplog.at_level(logging.WARNING, logger="inference.classifier"):
        classifier = load_classifier(tiny_artifacts[0])
    assert classifier.backend == "keras"
    assert "op not supported" in caplog.text


def test_an_unwritable_cache_still_serves_the_fast_path(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("DERMATRIAGE_CACHE_DIR", str(blocked))
    assert load_classifier(tiny_artifacts[0]).backend == "tflite"


def test_forcing_keras_works_by_argument_and_by_environment(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = tiny_artifacts
    assert load_classifier(first, backend="keras").backend == "keras"
    monkeypatch.setenv("DERMATRIAGE_INFERENCE_BACKEND", "keras")
    assert load_classifier(first).backend == "keras"
    # Keras alone never converts, so nothing was cached.
    assert not (tmp_path / "cache").exists()
    assert load_classifier(first, backend="tflite").backend == "tflite"


def test_an_unknown_backend_is_refused(
    tiny_artifacts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="onnx"):
        load_classifier(tiny_artifacts[0], backend="onnx")
    monkeypatch.setenv("DERMATRIAGE_INFERENCE_BACKEND", "fastest")
    with pytest.raises(ConfigurationError, match="DERMATRIAGE_INFERENCE_BACKEND"):
        load_classifier(tiny_artifacts[0])


def test_the_interpreter_thread_count_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert interpreter_threads() >= 1
    monkeypatch.setenv("DERMATRIAGE_INFERENCE_THREADS", "1")
    assert interpreter_threads() == 1
    monkeypatch.setenv("DERMATRIAGE_INFERENCE_THREADS", "0")
    with pytest.raises(ConfigurationError, match="positive integer"):
        interpreter_threads()


def test_the_cli_uses_the_fast_path_by_default(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "lesion.jpg"
    image.write_bytes(_jpeg(synthetic_lesion(3, height=120, width=160)))

    assert main(["predict", str(image), "--model", str(tiny_artifacts[0])]) == 0
    fast = capsys.readouterr()
    assert (
        main(["predict", str(image), "--model", str(tiny_artifacts[0]), "--backend", "keras"]) == 0
    )
    keras = capsys.readouterr()

    assert "on the tflite backend" in fast.err
    assert "on the keras backend" in keras.err
    # Conversion must not spill onto stdout, which carries the CSV.
    [fast_row] = csv.DictReader(io.StringIO(fast.out))
    [keras_row] = csv.DictReader(io.StringIO(keras.out))
    assert float(fast_row["probability"]) == pytest.approx(
        float(keras_row["probability"]), abs=TOLERANCE
    )


def test_prepare_converts_and_caches_the_flatbuffer_ahead_of_time(
    tiny_artifacts: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", "--model", str(tiny_artifacts[1])]) == 0
    flatbuffer_path, _ = _cache_entry(tiny_artifacts[1], tmp_path / "cache")
    assert flatbuffer_path.is_file()
    assert f"tflite backend, flatbuffer cached at {flatbuffer_path}" in capsys.readouterr().out


def test_threads_sharing_one_fast_classifier_get_their_own_answers(
    tiny_artifacts: tuple[Path, Path],
) -> None:
    classifier = load_classifier(tiny_artifacts[0])
    batches = [
        np.stack([synthetic_lesion(200 + 10 * job + i, height=32, width=32) for i in range(job)])
        for job in range(1, 9)
    ]
    expected = [classifier.probabilities(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(classifier.probabilities, batches * 4))
    for answer, wanted in zip(answers, expected * 4, strict=True):
        np.testing.assert_allclose(answer, wanted, atol=1e-6)
