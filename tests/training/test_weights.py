"""Tests for fetching, converting and loading ImageNet backbone weights."""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from training import weights
from training.backbones import efficientnet_lite0_base
from training.lite_blocks import STAGES
from training.weights import (
    WeightsError,
    fetch_lite_weights,
    load_npz_weights,
    load_vgg16_conv_weights,
    main,
    read_legacy_torch_state_dict,
    resolve_lite_weights,
    resolve_vgg16_weights,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_weights_dir() -> Path:
    """Locate the shared weights beside the repository unless the environment says otherwise."""
    configured = os.environ.get("DERMATRIAGE_SHARED_WEIGHTS")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "weights"


# --- A writer for PyTorch's legacy format, so the reader is tested on bytes we control --------


class FakeStorage:
    """A storage to be pickled by key, as torch does, followed later by its raw bytes."""

    def __init__(self, key: str, values: np.ndarray) -> None:
        self.key = key
        self.values = values


class FakeStorageView:
    """A slice of a root storage, which torch < 1.0 pickled with view metadata."""

    def __init__(self, root: FakeStorage, key: str, offset: int, size: int) -> None:
        self.root = root
        self.key = key
        self.offset = offset
        self.size = size


class FakeTensor:
    """A tensor that pickles the way torch tensors do: a call to _rebuild_tensor_v2."""

    def __init__(
        self,
        storage: FakeStorage | FakeStorageView,
        offset: int,
        shape: tuple[int, ...],
        stride: tuple[int, ...],
    ) -> None:
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        no_hooks: collections.OrderedDict[str, object] = collections.OrderedDict()
        return rebuild, (self.storage, self.offset, self.shape, self.stride, False, no_hooks)


def fake_torch_modules() -> dict[str, types.ModuleType]:
    """Build importable ``torch`` and ``torch._utils`` modules holding the globals pickle names."""
    torch_module = types.ModuleType("torch")
    utils_module = types.ModuleType("torch._utils")
    for storage_name in ("FloatStorage", "LongStorage"):
        setattr(torch_module, storage_name, type(storage_name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args: object) -> None:
        raise AssertionError("only pickled here, never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_module._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch_module._utils = utils_module  # type: ignore[attr-defined]
    return {"torch": torch_module, "torch._utils": utils_module}


class LegacyPickler(pickle.Pickler):
    """Pickle storages as persistent ids, like ``torch.save`` in its legacy format."""

    def persistent_id(self, obj: object) -> tuple[object, ...] | None:
        if isinstance(obj, FakeStorageView):
            root, view_metadata = obj.root, (obj.key, obj.offset, obj.size)
        elif isinstance(obj, FakeStorage):
            root, view_metadata = obj, None
        else:
            return None
        type_name = "FloatStorage" if root.values.dtype == np.float32 else "LongStorage"
        storage_type = getattr(sys.modules["torch"], type_name)
        return ("storage", storage_type, root.key, "cpu", root.values.size, view_metadata)


def write_legacy_pth(
    monkeypatch: pytest.MonkeyPatch,
    state: collections.OrderedDict[str, FakeTensor],
    storages: list[FakeStorage],
) -> bytes:
    """Serialize ``state`` in the legacy layout: three header pickles, state, keys, raw data."""
    for name, module in fake_torch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    stream = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, stream, protocol=2)
    pickle.dump(1001, stream, protocol=2)
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 4}}
    pickle.dump(sys_info, stream, protocol=2)
    LegacyPickler(stream, protocol=2).dump(state)
    pickle.dump([storage.key for storage in storages], stream, protocol=2)
    for storage in storages:
        stream.write(storage.values.size.to_bytes(8, "little"))
        stream.write(storage.values.astype(storage.values.dtype.newbyteorder("<")).tobytes())
    return stream.getvalue()


def test_it_reads_tensors_with_offsets_strides_and_shared_storage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    floats = FakeStorage("140001", np.arange(10, dtype=np.float32) * 1.5)
    longs = FakeStorage("140002", np.array([7, -8], dtype=np.int64))
    state = collections.OrderedDict(
        [
            ("conv.weight", FakeTensor(floats, 2, (2, 3), (3, 1))),
            ("conv.weight_transposed", FakeTensor(floats, 2, (3, 2), (1, 3))),
            ("bn.num_batches_tracked", FakeTensor(longs, 0, (2,), (1,))),
            ("scalar", FakeTensor(floats, 9, (), ())),
            ("from_view", FakeTensor(FakeStorageView(floats, "140003", 4, 6), 1, (2,), (2,))),
        ]
    )
    pth = write_legacy_pth(monkeypatch, state, [floats, longs])

    arrays = read_legacy_torch_state_dict(io.BytesIO(pth))

    expected_weight = (np.arange(2, 8, dtype=np.float32) * 1.5).reshape(2, 3)
    assert list(arrays) == list(state)
    np.testing.assert_array_equal(arrays["conv.weight"], expected_weight)
    np.testing.assert_array_equal(arrays["conv.weight_transposed"], expected_weight.T)
    np.testing.assert_array_equal(arrays["bn.num_batches_tracked"], [7, -8])
    assert arrays["bn.num_batches_tracked"].dtype == np.int64
    assert arrays["scalar"].shape == ()
    assert arrays["scalar"] == np.float32(13.5)
    np.testing.assert_array_equal(arrays["from_view"], [7.5, 10.5])


def test_it_refuses_to_unpickle_globals_other_than_tensors() -> None:
    stream = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, stream, protocol=2)
    pickle.dump(1001, stream, protocol=2)
    pickle.dump({"little_endian": True}, stream, protocol=2)
    pickle.dump({"payload": subprocess.call}, stream, protocol=2, fix_imports=False)

    with pytest.raises(WeightsError, match=r"refusing to load subprocess\.call"):
        read_legacy_torch_state_dict(io.BytesIO(stream.getvalue()))


# --- The real downloads -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_lite0_npz() -> Path:
    path = shared_weights_dir() / weights.LITE0_NPZ_NAME
    if not path.is_file():
        pytest.skip(f"shared Lite0 weights not found at {path} (set DERMATRIAGE_SHARED_WEIGHTS)")
    return path


@pytest.fixture(scope="session")
def fetched_lite0_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetch_lite_weights(tmp_path_factory.mktemp("lite0") / weights.LITE0_NPZ_NAME)


@pytest.fixture(scope="session")
def fetched_vgg16_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_path = tmp_path_factory.mktemp("vgg16") / weights.VGG16_NPZ_NAME
    assert main(["fetch", "vgg16", "--out", str(out_path)]) == 0
    return out_path


def test_converted_lite0_weights_equal_the_shared_keras_npz(
    shared_lite0_npz: Path, fetched_lite0_npz: Path
) -> None:
    with np.load(shared_lite0_npz) as shared, np.load(fetched_lite0_npz) as fetched:
        expected_keys = [key for key in shared.files if not key.startswith("normalization/")]
        assert len(expected_keys) == 247
        assert sorted(fetched.files) == sorted(expected_keys)
        for key in expected_keys:
            assert fetched[key].shape == shared[key].shape, key
            np.testing.assert_allclose(fetched[key], shared[key], rtol=0, atol=1e-6, err_msg=key)


def test_vgg16_weights_load_into_keras_vgg16(fetched_vgg16_npz: Path) -> None:
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(64, 64, 3))

    load_vgg16_conv_weights(model, fetched_vgg16_npz)

    bias = model.get_layer("block1_conv1").get_weights()[1]
    assert np.abs(bias).max() > 0.1
    # The HED backbone keeps ImageNet VGG16's biases to within about 1e-5.
    np.testing.assert_allclose(bias[:3], [0.7343, 0.0934, 0.0677], atol=1e-3)
    assert load_npz_weights(model, fetched_vgg16_npz) == 13


# --- Loading into models and finding files ----------------------------------------------------


def small_model() -> keras.Model:
    inputs = keras.Input(shape=(4,))
    hidden = keras.layers.Dense(3, name="features")(inputs)
    outputs = keras.layers.Dense(2, name="head")(hidden)
    return keras.Model(inputs, outputs)


def test_load_npz_weights_names_the_layer_whose_shape_differs(tmp_path: Path) -> None:
    npz_path = tmp_path / "weights.npz"
    arrays = {"features/0": np.ones((4, 3)), "features/1": np.ones(3)}
    np.savez(
        npz_path, allow_pickle=False, **arrays, **{"head/0": np.ones((5, 2)), "head/1": np.ones(2)}
    )

    with pytest.raises(WeightsError, match=r"layer 'head': head/0 has shape \(5, 2\)"):
        load_npz_weights(small_model(), npz_path)


def test_load_npz_weights_leaves_skipped_layers_alone_and_counts_the_rest(tmp_path: Path) -> None:
    npz_path = tmp_path / "weights.npz"
    np.savez(
        npz_path,
        allow_pickle=False,
        **{"features/0": np.full((4, 3), 0.5), "features/1": np.ones(3)},
    )
    model = small_model()

    loaded = load_npz_weights(model, npz_path, skip_missing_prefixes=("head",))

    assert loaded == 1
    np.testing.assert_array_equal(model.get_layer("features").get_weights()[0], 0.5)


def test_load_npz_weights_names_the_layer_missing_from_the_npz(tmp_path: Path) -> None:
    npz_path = tmp_path / "weights.npz"
    np.savez(
        npz_path, allow_pickle=False, **{"features/0": np.ones((4, 3)), "features/1": np.ones(3)}
    )

    with pytest.raises(WeightsError, match=r"layer 'head': the npz has no entry 'head/0'"):
        load_npz_weights(small_model(), npz_path)


def test_resolving_weights_prefers_the_configured_weights_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DERMATRIAGE_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / weights.LITE0_NPZ_NAME).touch()
    (tmp_path / weights.VGG16_NPZ_NAME).touch()

    assert resolve_lite_weights(None) == tmp_path / weights.LITE0_NPZ_NAME
    assert resolve_vgg16_weights(None) == tmp_path / weights.VGG16_NPZ_NAME
    assert weights.default_weights_dir() == tmp_path


def test_resolving_absent_weights_gives_the_command_that_fetches_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DERMATRIAGE_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(weights, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(weights, "SHARED_WEIGHTS_DIR", tmp_path / "shared")

    with pytest.raises(WeightsError, match=r"python -m training\.weights fetch lite0"):
        resolve_lite_weights(None)
    with pytest.raises(WeightsError, match=r"python -m training\.weights fetch vgg16"):
        resolve_vgg16_weights(None)
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_vgg16_weights(tmp_path / "typo.npz")


# --- The Lite0 backbone -----------------------------------------------------------------------


def test_lite0_is_b0s_block_table() -> None:
    assert [stage.repeats for stage in STAGES] == [1, 2, 2, 3, 3, 4, 1]
    assert [stage.filters_out for stage in STAGES] == [16, 24, 40, 80, 112, 192, 320]
    assert [stage.filters_in for stage in STAGES] == [32, 16, 24, 40, 80, 112, 192]


def test_fetched_lite0_weights_fit_every_layer_of_the_built_backbone(
    fetched_lite0_npz: Path,
) -> None:
    base = efficientnet_lite0_base(64)

    weighted_layers = [layer for layer in base.layers if layer.weights]
    # Any missing or misshapen array raises; every weighted layer is set from the checkpoint.
    assert load_npz_weights(base, fetched_lite0_npz) == len(weighted_layers)
    with np.load(fetched_lite0_npz) as archive:
        assert set(archive.files) == {
            f"{layer.name}/{index}"
            for layer in weighted_layers
            for index in range(len(layer.weights))
        } | {"predictions/0", "predictions/1"}
        np.testing.assert_array_equal(
            base.get_layer("top_conv").get_weights()[0], archive["top_conv/0"]
        )


def test_resolve_or_fetch_fetches_only_what_was_not_asked_for_by_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DERMATRIAGE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(weights, "SHARED_WEIGHTS_DIR", tmp_path / "shared")
    # Not the checkout's own weights-cache, which a training run may have filled.
    monkeypatch.setattr(weights, "REPO_ROOT", tmp_path / "repo")

    def must_not_fetch(out_path: Path) -> Path:
        raise AssertionError(f"fetched {out_path}")

    monkeypatch.setitem(weights.FETCHERS, "vgg16", (must_not_fetch, "x.npz", "requirement"))
    # A typo in an explicit path is an error, not a reason to download.
    with pytest.raises(WeightsError, match="does not exist"):
        weights.resolve_or_fetch("vgg16", tmp_path / "typo.npz")
    with pytest.raises(WeightsError, match="fetch vgg16"):
        weights.resolve_or_fetch("vgg16", fetch=False)
