"""Fixtures shared by every test package. Django-free: the web app's live in tests/webapp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dermoscopy_data_dir() -> Path:
    """The shared dermoscopy dataset (never committed); skips the test where it is absent."""
    configured = os.environ.get("DERMATRIAGE_DATA_DIR")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data" / "dermoscopy"
    if not (path / "manifest.csv").is_file():
        message = f"dermoscopy dataset not found at {path} (set DERMATRIAGE_DATA_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
