"""The committed, served model, loaded once for the whole inference test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inference import Classifier, default_model_dir, load_classifier
from training.data import Dataset, default_data_dirs, load_dataset


@pytest.fixture(scope="session")
def served_model_dir() -> Path:
    return default_model_dir()


@pytest.fixture(scope="session")
def classifier(served_model_dir: Path) -> Classifier:
    return load_classifier(served_model_dir)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """Every data folder the served model was trained and tested on."""
    folders = default_data_dirs()
    missing = [path for path in folders if not (path / "manifest.csv").is_file()]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"dataset folders {missing} are missing in CI (set DERMATRIAGE_DATA_DIR)")
        pytest.skip(f"dataset folders {missing} are absent and CI is not set")
    return load_dataset(folders)
