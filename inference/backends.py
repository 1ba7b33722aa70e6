"""Ways to run a verified Keras model: its traced Keras call, or a LiteRT flatbuffer made from it.

`model.predict` spends most of a single-image call setting up datasets and callbacks; a traced
call avoids that, and the LiteRT interpreter with XNNPACK avoids TensorFlow's per-op dispatch as
well. The flatbuffer (about the size of the model) cannot ship inside the artifact, which must
stay small, so it is converted from the verified model file on first load and cached on disk
under the model file's sha256. A cached flatbuffer is used only after its own digest checks out
and its answers match the Keras model's on deterministic inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from inference.artifact import LOGIT_LAYER, POOLING_LAYER, ModelMetadata
from inference.errors import BackendUnavailableError, ConfigurationError, ModelArtifactError
from inference.synthetic import synthetic_lesion
from inference.threads import available_cores

logger = logging.getLogger(__name__)

# uint8 pixels (N, size, size, 3) in; logits (N, 1) and the last feature maps (N, h, w, C) out.
Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
BackendChoice = Literal["auto", "gpu", "tflite", "keras"]
BACKEND_CHOICES: tuple[BackendChoice, ...] = ("auto", "gpu", "tflite", "keras")

BACKEND_ENV = "DERMATRIAGE_INFERENCE_BACKEND"
THREADS_ENV = "DERMATRIAGE_INFERENCE_THREADS"
CACHE_DIR_ENV = "DERMATRIAGE_CACHE_DIR"

# Bumped whenever the conversion below changes, so that older cache entries are not reused.
CONVERSION_RECIPE = 2
# The fast path must give the Keras model's calibrated probabilities to within this.
MAX_PROBABILITY_DIFFERENCE = 1e-4
# The GPU path in float16 arithmetic may differ by this much; beyond it, it runs in float32.
MAX_HALF_PRECISION_DIFFERENCE = 1e-3
# Images per GPU call: enough to keep the device busy, few enough for any card's memory.
GPU_BATCH = 64
# Images per interpreter call. Batching buys XNNPACK nothing on CPU: small chunks ran faster per
# image than large ones (a smaller working set; docs/history.md, 2026-11-25), and a small chunk
# keeps the interpreter's tensor arena small.
INTERPRETER_MAX_BATCH = 4


def backend_choice(requested: str | None) -> BackendChoice:
    """The backend asked for by argument, else by `DERMATRIAGE_INFERENCE_BACKEND`, else auto."""
    value = requested if requested is not None else os.environ.get(BACKEND_ENV) or "auto"
    normalised = value.strip().lower()
    if normalised not in BACKEND_CHOICES:
        source = "backend argument" if requested is not None else BACKEND_ENV
        raise ConfigurationError(
            f"{source} is {value!r}; expected one of {', '.join(BACKEND_CHOICES)}"
        )
    return cast(BackendChoice, normalised)


def interpreter_threads() -> int:
    """`DERMATRIAGE_INFERENCE_THREADS`, else the cores this process may run on."""
    configured = os.environ.get(THREADS_ENV, "").strip()
    if not configured:
        return available_cores()
    try:
        threads = int(configured)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigurationError(f"{THREADS_ENV} must be a positive integer, got {configured!r}")
    return threads


def cache_root() -> Path:
    """`DERMATRIAGE_CACHE_DIR`, else `dermatriage` under the user's cache folder."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(base).expanduser() / "dermatriage"


def load_keras_model(model_path: Path) -> Any:
    """Load a `.keras` model file for inference only."""
    import keras

    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # keras raises many types for a damaged zip/h5 file
        raise ModelArtifactError(f"cannot load model file {model_path}: {exc}") from exc


def with_feature_maps(model: Any) -> Any:
    """The classifier with a second output: the feature maps its head pools (see
    inference.explain and inference.gate, which read them)."""
    import keras

    feature_maps = model.get_layer(POOLING_LAYER).input
    return keras.Model(model.inputs, [model.outputs[0], feature_maps], name=model.name)


def head_kernel(model: Any) -> np.ndarray:
    """The final linear unit's (C,) kernel, which turns feature maps into activation maps."""
    kernel = model.get_layer(LOGIT_LAYER).get_weights()[0]
    return np.asarray(kernel, dtype=np.float64).reshape(-1)


def keras_forward(model: Any) -> Forward:
    """A traced Keras call of a `with_feature_maps` model: uint8 pixel batch in, logits and
    feature maps out."""
    import tensorflow as tf

    # Traced once per batch shape; skips model.predict's per-call dataset and callback setup,
    # which dominates the cost of scoring a single image.
    @tf.function(reduce_retracing=True)
    def call(pixels: tf.Tensor) -> tf.Tensor:
        return model(tf.cast(pixels, tf.float32), training=False)

    def forward(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, feature_maps = call(tf.convert_to_tensor(pixels))
        return np.asarray(logits), np.asarray(feature_maps)

    return forward


def gpu_names() -> list[str]:
    """The GPUs TensorFlow can use here, by name; empty on a CPU-only machine."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(str(details.get("device_name") or device.name))
    return names


def half_precision_copy(model: Any) -> Any:
    """The model rebuilt in mixed float16 (float16 arithmetic, float32 weights and logit)."""
    import keras

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        copy = keras.models.clone_model(model)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def gpu_forward(model: Any, *, batch: int = GPU_BATCH) -> Forward:
    """An XLA-compiled call of a `with_feature_maps` model on the first GPU, in chunks of
    `batch` images; compiled for both shapes it sees in a worker before it returns."""
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=True)
    def call(pixels: tf.Tensor) -> list[tf.Tensor]:
        logits, maps = model(tf.cast(pixels, tf.float32), training=False)
        return [tf.cast(logits, tf.float32), tf.cast(maps, tf.float32)]

    def forward(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, maps = [], []
        with tf.device("/GPU:0"):
            for start in range(0, len(pixels), batch):
                chunk_logits, chunk_maps = call(tf.convert_to_tensor(pixels[start : start + batch]))
                logits.append(np.asarray(chunk_logits))
                maps.append(np.asarray(chunk_maps))
        return np.concatenate(logits), np.concatenate(maps)

    size = int(model.inputs[0].shape[1])
    for warm in (1, batch):  # one upload, and a full batch of a backlog
        forward(np.zeros((warm, size, size, 3), np.uint8))
    return forward


def verified_gpu_forward(
    model: Any, reference: Forward, metadata: ModelMetadata
) -> tuple[Forward, str]:
    """The GPU forward in float16 where it matches `reference` within
    MAX_HALF_PRECISION_DIFFERENCE, else in float32 where that matches within
    MAX_PROBABILITY_DIFFERENCE; its precision's name with it. BackendUnavailableError when
    neither does or the GPU cannot run it."""
    pixels = verification_batch(metadata.input_size)
    attempts = (
        ("float16", lambda: gpu_forward(half_precision_copy(model)), MAX_HALF_PRECISION_DIFFERENCE),
        ("float32", lambda: gpu_forward(model), MAX_PROBABILITY_DIFFERENCE),
    )
    failures = []
    for precision, build, allowed in attempts:
        try:
            forward = build()
            difference = max_probability_difference(
                reference, forward, pixels, metadata.temperature
            )
        except Exception as exc:  # XLA and the CUDA runtime raise many types
            failures.append(f"{precision}: {exc}")
            continue
        if difference <= allowed:
            logger.info(
                "GPU %s path for %s verified: max probability difference %.2e",
                precision,
                metadata.version,
                difference,
            )
            return forward, precision
        failures.append(f"{precision}: probabilities differ by {difference:.2e}")
    raise BackendUnavailableError("the GPU path failed its checks (" + "; ".join(failures) + ")")


def convert_to_flatbuffer(model: Any, input_size: int) -> bytes:
    """Convert a `with_feature_maps` model to a float32 LiteRT flatbuffer that takes uint8
    pixels."""
    import keras
    import tensorflow as tf

    # Exported through Keras's own archive: a plain tf.Module does not track Keras 3 variables,
    # and the converter then silently drops the weights.
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(pixels: tf.Tensor) -> list[tf.Tensor]:
        return list(model(tf.cast(pixels, tf.float32), training=False))

    signature = [tf.TensorSpec([None, input_size, input_size, 3], tf.uint8, name="pixels")]
    archive.add_endpoint("serve", serve, signature)
    # Conversion chatter must not land on stdout, where the CLI writes its CSV or JSON.
    with tempfile.TemporaryDirectory() as export_dir, contextlib.redirect_stdout(sys.stderr):
        archive.write_out(export_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(export_dir)
        # No quantisation or reduced precision: the fast path must match the Keras model.
        converter.optimizations = []
        flatbuffer = converter.convert()
    return bytes(flatbuffer)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's own copy, deprecated in favour of ai-edge-litert
        import tensorflow as tf

        return tf.lite.Interpreter
    return Interpreter


class InterpreterForward:
    """Run a flatbuffer with the LiteRT interpreter (XNNPACK on CPU) on batches of any size."""

    def __init__(
        self, flatbuffer: bytes, *, threads: int, max_batch: int = INTERPRETER_MAX_BATCH
    ) -> None:
        # The interpreter reads the model from this buffer for as long as it lives.
        self._flatbuffer = flatbuffer
        self.threads = threads
        self.max_batch = max_batch
        self._interpreter = _interpreter_class()(model_content=flatbuffer, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]
        # The converter does not keep the outputs' order; their ranks tell them apart.
        outputs = {
            len(detail["shape_signature"]): detail["index"]
            for detail in self._interpreter.get_output_details()
        }
        if set(outputs) != {2, 4}:
            raise BackendUnavailableError(
                "flatbuffer must output logits and feature maps, got outputs of rank "
                f"{sorted(outputs)}"
            )
        self._logits_index, self._maps_index = outputs[2], outputs[4]
        self._batch = -1
        if np.dtype(self._input["dtype"]) != np.uint8:
            raise BackendUnavailableError(
                f"flatbuffer takes {self._input['dtype']} input, not uint8 pixels"
            )

    @property
    def flatbuffer(self) -> bytes:
        return self._flatbuffer

    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, 1) and feature maps (N, h, w, C) for a uint8 (N, size, size, 3) batch."""
        logits, maps = [], []
        for start in range(0, len(pixels), self.max_batch):
            chunk = np.ascontiguousarray(pixels[start : start + self.max_batch], dtype=np.uint8)
            self._reshape(len(chunk))
            self._interpreter.set_tensor(self._input["index"], chunk)
            self._interpreter.invoke()
            logits.append(self._interpreter.get_tensor(self._logits_index).reshape(len(chunk), 1))
            # Copied: the interpreter reuses its output buffers on the next invoke.
            maps.append(np.array(self._interpreter.get_tensor(self._maps_index)))
        if not logits:
            return np.zeros((0, 1), np.float32), np.zeros((0, 0, 0, 0), np.float32)
        return np.concatenate(logits), np.concatenate(maps)

    def _reshape(self, batch: int) -> None:
        if batch == self._batch:
            return
        shape = [batch, *self._input["shape_signature"][1:]]
        self._interpreter.resize_tensor_input(self._input["index"], shape, strict=True)
        self._interpreter.allocate_tensors()
        self._batch = batch


class FlatbufferCache:
    """Converted flatbuffers on disk, keyed by model sha256, input size and conversion recipe."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self, metadata: ModelMetadata) -> tuple[Path, Path]:
        """The flatbuffer's path and that of the manifest recording its digest."""
        stem = f"{metadata.model_sha256}-{metadata.input_size}px-recipe{CONVERSION_RECIPE}"
        return self.root / f"{stem}.tflite", self.root / f"{stem}.json"

    def read(self, metadata: ModelMetadata) -> bytes | None:
        """The cached flatbuffer, or None when absent or when it fails its digest check."""
        flatbuffer_path, manifest_path = self.paths(metadata)
        if not flatbuffer_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            flatbuffer = flatbuffer_path.read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning("Ignoring unreadable cache entry %s: %s", flatbuffer_path, exc)
            return None
        if not isinstance(manifest, dict) or manifest != self._manifest(metadata, flatbuffer):
            logger.warning("Ignoring corrupt cache entry %s: digest mismatch", flatbuffer_path)
            return None
        return flatbuffer

    def write(self, metadata: ModelMetadata, flatbuffer: bytes) -> None:
        """Store a flatbuffer; each file appears whole or not at all."""
        flatbuffer_path, manifest_path = self.paths(metadata)
        manifest = self._manifest(metadata, flatbuffer)
        self.root.mkdir(parents=True, exist_ok=True)
        # Flatbuffer first: a reader that sees the new manifest with an old flatbuffer (or none)
        # fails the digest check and rebuilds, never the other way round.
        _write_atomically(flatbuffer_path, flatbuffer)
        _write_atomically(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    @staticmethod
    def _manifest(metadata: ModelMetadata, flatbuffer: bytes) -> dict[str, Any]:
        return {
            "model_sha256": metadata.model_sha256,
            "input_size": metadata.input_size,
            "conversion_recipe": CONVERSION_RECIPE,
            "flatbuffer_sha256": hashlib.sha256(flatbuffer).hexdigest(),
        }


def _write_atomically(path: Path, content: bytes) -> None:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename below
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        # Readable by every worker account, like any other cache file (mkstemp makes it 0600).
        Path(handle.name).chmod(0o644)
        Path(handle.name).replace(path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def verification_batch(input_size: int) -> np.ndarray:
    """Deterministic inputs both backends must agree on: lesion-like images and two extremes."""
    lesions = [synthetic_lesion(seed, height=input_size, width=input_size) for seed in range(3)]
    extremes = [
        np.zeros((input_size, input_size, 3), np.uint8),
        np.full((input_size, input_size, 3), 255, np.uint8),
    ]
    return np.stack(lesions + extremes)


def max_probability_difference(
    reference: Forward, candidate: Forward, pixels: np.ndarray, temperature: float
) -> float:
    """Largest |difference| between the two forwards' calibrated probabilities on `pixels`."""

    def probabilities(forward: Forward) -> np.ndarray:
        logits = np.asarray(forward(pixels)[0], dtype=np.float64).reshape(-1)
        return 1.0 / (1.0 + np.exp(-logits / temperature))

    difference = np.abs(probabilities(reference) - probabilities(candidate))
    if difference.shape != (len(pixels),) or not np.isfinite(difference).all():
        return float("inf")
    return float(difference.max(initial=0.0))


def tflite_forward(
    model: Any,
    reference: Forward,
    metadata: ModelMetadata,
    *,
    threads: int,
    cache: FlatbufferCache | None,
) -> InterpreterForward:
    """An interpreter forward verified against `reference`, from the cache or a fresh conversion."""
    pixels = verification_batch(metadata.input_size)
    cached = cache.read(metadata) if cache is not None else None
    if cached is not None:
        try:
            return _verified(cached, reference, pixels, metadata, threads=threads)
        except BackendUnavailableError as exc:
            logger.warning("Rebuilding cached flatbuffer for %s: %s", metadata.version, exc)

    try:
        flatbuffer = convert_to_flatbuffer(model, metadata.input_size)
    except Exception as exc:  # the converter raises many types for ops it cannot express
        raise BackendUnavailableError(f"conversion to a LiteRT flatbuffer failed: {exc}") from exc
    forward = _verified(flatbuffer, reference, pixels, metadata, threads=threads)
    if cache is not None:
        try:
            cache.write(metadata, flatbuffer)
        except OSError as exc:
            logger.warning("Cannot cache the flatbuffer under %s: %s", cache.root, exc)
    return forward


def _verified(
    flatbuffer: bytes,
    reference: Forward,
    pixels: np.ndarray,
    metadata: ModelMetadata,
    *,
    threads: int,
) -> InterpreterForward:
    try:
        # Chunks of two over five images exercise the interpreter's resizing as well.
        forward = InterpreterForward(flatbuffer, threads=threads, max_batch=2)
        difference = max_probability_difference(reference, forward, pixels, metadata.temperature)
        forward.max_batch = INTERPRETER_MAX_BATCH
    except BackendUnavailableError:
        raise
    except Exception as exc:  # a damaged flatbuffer fails in the interpreter's own error types
        raise BackendUnavailableError(f"the LiteRT interpreter cannot run it: {exc}") from exc
    if difference > MAX_PROBABILITY_DIFFERENCE:
        raise BackendUnavailableError(
            f"its probabilities differ from the Keras model's by {difference:.2e} "
            f"(allowed {MAX_PROBABILITY_DIFFERENCE:.0e})"
        )
    logger.info(
        "LiteRT flatbuffer for %s verified: max probability difference %.2e",
        metadata.version,
        difference,
    )
    return forward
