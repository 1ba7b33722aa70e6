"""The committed, served model, loaded once for the whole inference test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inference import Classifier, default_model_dir, load_classifier
from training.data import default_data_dir


@pytest.fixture(scope="session")
def served_model_dir() -> Path:
    return default_model_dir()


@pytest.fixture(scope="session")
def classifier(served_model_dir: Path) -> Classifier:
    return load_classifier(served_model_dir)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real dataset; CI must have it, a developer machine without it skips."""
    path = default_data_dir()
    if not (path / "manifest.csv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"dataset folder {path} is missing in CI (set DERMATRIAGE_DATA_DIR)")
        pytest.skip(f"dataset folder {path} is absent and CI is not set")
    return path
