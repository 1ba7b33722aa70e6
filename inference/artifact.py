"""The artifact format that `training` writes and `inference` reads.

An artifact is a folder: the model file plus `metadata.json`, which names the architecture
honestly and carries everything a caller needs (input size, labels, threshold, temperature,
test metrics, the model file's sha256). Callers read these from the artifact, never from
constants of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.errors import ModelArtifactError
from inference.preprocessing import Preprocessing

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
SERVED_MODEL_NAME = "efficientnet_lite0"
# Every model's head: global average pooling of the last feature maps, then one linear unit.
# Inference reads the feature maps at the pooling layer's input (inference.explain).
POOLING_LAYER = "head_pool"
LOGIT_LAYER = "malignancy_logit"
REQUIRED_KEYS = (
    "format_version",
    "name",
    "version",
    "architecture",
    "display_name",
    "model_file",
    "model_sha256",
    "input_size",
    "effective_resolution",
    "labels",
    "threshold",
    "temperature",
)


@dataclass(frozen=True)
class ModelMetadata:
    """The parts of `metadata.json` that inference acts on; `raw` keeps the whole document."""

    name: str
    version: str
    architecture: str
    display_name: str
    model_file: str
    model_sha256: str
    input_size: int
    effective_resolution: int
    labels: tuple[str, ...]
    threshold: float
    temperature: float
    test_time_augmentation: bool
    raw: dict[str, Any]
    colour_constancy: str = "none"

    @property
    def positive_label(self) -> str:
        return self.labels[1]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            input_size=self.input_size,
            effective_resolution=self.effective_resolution,
            colour_constancy=self.colour_constancy,
        )


def repo_models_dir() -> Path:
    """The `models/` folder of this checkout."""
    return Path(__file__).resolve().parent.parent / "models"


def default_model_dir() -> Path:
    """`DERMATRIAGE_MODEL_DIR` if set, else the served artifact committed under `models/`."""
    configured = os.environ.get("DERMATRIAGE_MODEL_DIR")
    if configured:
        return Path(configured)
    return repo_models_dir() / SERVED_MODEL_NAME


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(artifact_dir: Path) -> ModelMetadata:
    """Parse and check `metadata.json`; raise ModelArtifactError saying what is wrong."""
    path = artifact_dir / METADATA_FILE
    if not artifact_dir.is_dir():
        raise ModelArtifactError(
            f"model artifact folder {artifact_dir} does not exist "
            "(set DERMATRIAGE_MODEL_DIR or train one with `python -m training compare`)"
        )
    if not path.is_file():
        raise ModelArtifactError(f"{path} is missing: {artifact_dir} is not a model artifact")
    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path} is not valid JSON: {exc}") from exc
    return parse_metadata(raw, where=str(path))


def write_metadata(artifact_dir: Path, document: dict[str, Any]) -> ModelMetadata:
    """Check `document` as `read_metadata` will, then write it as the artifact's
    `metadata.json`: training writes through here, so it cannot write what inference refuses."""
    metadata = parse_metadata(document, where=f"metadata for {artifact_dir}")
    artifact_dir.mkdir(parents=True, exist_ok=True)
    (artifact_dir / METADATA_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return metadata


def parse_metadata(raw: Any, *, where: str) -> ModelMetadata:
    """The metadata document's parts that inference acts on, checked; ModelArtifactError
    saying what is wrong otherwise."""
    if not isinstance(raw, dict):
        raise ModelArtifactError(f"{where} must hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ModelArtifactError(f"{where} lacks required keys: {', '.join(missing)}")
    if raw["format_version"] != FORMAT_VERSION:
        raise ModelArtifactError(
            f"{where} has format_version {raw['format_version']!r}; this code reads "
            f"{FORMAT_VERSION}"
        )
    try:
        metadata = ModelMetadata(
            name=str(raw["name"]),
            version=str(raw["version"]),
            architecture=str(raw["architecture"]),
            display_name=str(raw["display_name"]),
            model_file=str(raw["model_file"]),
            model_sha256=str(raw["model_sha256"]).lower(),
            input_size=int(raw["input_size"]),
            effective_resolution=int(raw["effective_resolution"]),
            labels=tuple(str(label) for label in raw["labels"]),
            threshold=float(raw["threshold"]),
            temperature=float(raw["temperature"]),
            test_time_augmentation=bool(raw.get("test_time_augmentation", False)),
            raw=raw,
            # Absent from artifacts written before colour constancy was a choice.
            colour_constancy=str(raw.get("colour_constancy", "none")),
        )
        metadata.preprocessing  # noqa: B018 - refuses an unknown colour constancy here
    except (TypeError, ValueError) as exc:
        raise ModelArtifactError(f"{where} has a value of the wrong type: {exc}") from exc
    if len(metadata.labels) != 2:
        raise ModelArtifactError(f"{where}: expected two labels, got {list(metadata.labels)}")
    if not 0.0 <= metadata.threshold <= 1.0:
        raise ModelArtifactError(f"{where}: threshold {metadata.threshold} is outside [0, 1]")
    if metadata.temperature <= 0.0:
        raise ModelArtifactError(f"{where}: temperature must be positive")
    if metadata.input_size < 16 or metadata.effective_resolution < 16:
        raise ModelArtifactError(f"{where}: input size and effective resolution must be >= 16")
    if Path(metadata.model_file).name != metadata.model_file:
        raise ModelArtifactError(f"{where}: model_file must be a file name inside the artifact")
    return metadata


def verify_model_file(artifact_dir: Path, metadata: ModelMetadata) -> Path:
    """Return the model file's path after checking it exists and matches its recorded sha256."""
    model_path = artifact_dir / metadata.model_file
    if not model_path.is_file():
        raise ModelArtifactError(f"model file {model_path} named in metadata.json is missing")
    actual = file_sha256(model_path)
    if actual != metadata.model_sha256:
        raise ModelArtifactError(
            f"model file {model_path} is corrupt or was replaced: sha256 {actual} does not match "
            f"{metadata.model_sha256} recorded in metadata.json"
        )
    return model_path
