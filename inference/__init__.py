"""Score dermoscopic images with a trained DermaTriage artifact. Never imports Django.

What it prints and returns carries DISCLAIMER (inference.disclaimer), the project's one text.
"""

from inference.artifact import ModelMetadata, default_model_dir, read_metadata
from inference.classifier import Classifier, ImagePrediction, load_classifier
from inference.disclaimer import DISCLAIMER
from inference.errors import (
    BackendUnavailableError,
    ConfigurationError,
    ImageDecodeError,
    InferenceError,
    ModelArtifactError,
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
