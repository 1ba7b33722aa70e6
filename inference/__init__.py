"""Score dermoscopic images with a trained DermaTriage artifact. Never imports Django.

For education and research, not a medical diagnosis.
"""

from inference.artifact import ModelMetadata, default_model_dir, read_metadata
from inference.classifier import Classifier, ImagePrediction, load_classifier
from inference.errors import (
    BackendUnavailableError,
    ConfigurationError,
    ImageDecodeError,
    InferenceError,
    ModelArtifactError,
)

DISCLAIMER = (
    "For education and research only, not a medical diagnosis. DermaTriage is not a medical "
    "device; a qualified clinician must assess every lesion."
)

__all__ = [
    "DISCLAIMER",
    "BackendUnavailableError",
    "Classifier",
    "ConfigurationError",
    "ImageDecodeError",
    "ImagePrediction",
    "InferenceError",
    "ModelArtifactError",
    "ModelMetadata",
    "default_model_dir",
    "load_classifier",
    "read_metadata",
]
