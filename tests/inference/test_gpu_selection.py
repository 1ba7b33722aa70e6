"""How the GPU path is chosen, tested on the CPU with the device report and the GPU call
replaced: chosen when a device is reported and it passes its parity check, refused with a
clear message when it does not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import BackendUnavailableError, backends, classifier, load_classifier
from tests.inference.test_fast_path import _tiny_artifact


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_artifact(tmp_path_factory.mktemp("gpu") / "tiny", seed=3)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMATRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DERMATRIAGE_INFERENCE_BACKEND", raising=False)


def _report_gpus(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    monkeypatch.setattr(classifier, "gpu_names", lambda: list(names))


def _gpu_call_with(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[np.ndarray], np.ndarray]
) -> list[int]:
    """Stand the GPU call in with the CPU's Keras call, its logits passed through `change`;
    returns the list of batch sizes it was built for."""
    built: list[int] = []

    def fake_gpu_forward(model: Any, *, batch: int = backends.GPU_BATCH) -> backends.Forward:
        built.append(batch)
        keras_call = backends.keras_forward(model)

        def forward(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            logits, maps = keras_call(pixels)
            return change(logits), maps

        return forward

    monkeypatch.setattr(backends, "gpu_forward", fake_gpu_forward)
    return built


def test_a_reported_gpu_that_passes_its_parity_check_is_chosen(
    tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _report_gpus(monkeypatch, "NVIDIA Test GPU")
    built = _gpu_call_with(monkeypatch, lambda logits: logits)

    with caplog.at_level(logging.INFO, logger="inference"):
        loaded = load_classifier(tiny_artifact)

    assert loaded.backend == "gpu"
    # Half precision is tried first and, matching float32, kept.
    assert loaded.device == "NVIDIA Test GPU (float16)"
    assert built == [backends.GPU_BATCH]
    assert "on NVIDIA Test GPU (float16), gpu path" in caplog.text


def test_a_gpu_whose_half_precision_drifts_runs_in_float32(
    tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _report_gpus(monkeypatch, "NVIDIA Test GPU")
    calls = {"n": 0}
    real_half = backends.half_precision_copy

    def marked_half(model: Any) -> Any:
        calls["n"] += 1
        copy = real_half(model)
        copy.get_layer("malignancy_logit").bias.assign([5.0])  # far from float32's answer
        return copy

    monkeypatch.setattr(backends, "half_precision_copy", marked_half)
    _gpu_call_with(monkeypatch, lambda logits: logits)

    loaded = load_classifier(tiny_artifact)

    assert calls["n"] == 1
    assert loaded.device == "NVIDIA Test GPU (float32)"


def test_a_gpu_that_fails_its_parity_check_is_refused_with_the_reason(
    tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _report_gpus(monkeypatch, "NVIDIA Test GPU")
    _gpu_call_with(monkeypatch, lambda logits: logits + 1.0)

    with pytest.raises(BackendUnavailableError, match="gpu backend: the GPU path failed its"):
        load_classifier(tiny_artifact, backend="gpu")
    # "auto" steps down to the CPU and says why.
    with caplog.at_level(logging.WARNING, logger="inference"):
        assert load_classifier(tiny_artifact).backend == "tflite"
    assert "Not scoring" in caplog.text
    assert "probabilities differ" in caplog.text


def test_forcing_the_gpu_without_one_says_so(
    tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _report_gpus(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="reports no GPU"):
        load_classifier(tiny_artifact, backend="gpu")
    monkeypatch.setenv("DERMATRIAGE_INFERENCE_BACKEND", "gpu")
    with pytest.raises(BackendUnavailableError, match="reports no GPU"):
        load_classifier(tiny_artifact)
    # Without a GPU, "auto" is the CPU's fast path, quietly.
    monkeypatch.delenv("DERMATRIAGE_INFERENCE_BACKEND")
    assert load_classifier(tiny_artifact).backend == "tflite"
