"""Errors raised by the inference package, each with a message meant for a person."""


class InferenceError(Exception):
    """Base class for every error this package raises."""


class ModelArtifactError(InferenceError):
    """The model artifact is missing, corrupt or does not match its metadata."""


class ImageDecodeError(InferenceError, ValueError):
    """An input could not be read as an image."""


class ConfigurationError(InferenceError, ValueError):
    """An inference setting (argument or environment variable) has a value we cannot use."""


class BackendUnavailableError(InferenceError):
    """The requested inference backend cannot run this model faithfully."""
