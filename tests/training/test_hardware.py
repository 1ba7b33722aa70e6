"""Precision choice: mixed float16 on a GPU, float32 on every CPU; the CPU described by its
flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.hardware import (
    cpu_flags,
    describe_cpu,
    describe_training_device,
    gpu_name,
    resolve_precision,
)


def test_a_cpu_trains_in_float32_even_with_bfloat16_matrix_units() -> None:
    # Measured slower in mixed bfloat16 on AVX2, AVX512-BF16 and AMX CPUs alike.
    assert resolve_precision("auto", has_gpu=False) == "float32"


def test_a_gpu_trains_in_mixed_float16() -> None:
    assert resolve_precision("auto", has_gpu=True) == "mixed_float16"


def test_an_explicit_precision_is_kept_whatever_the_hardware() -> None:
    assert resolve_precision("mixed_bfloat16", has_gpu=False) == "mixed_bfloat16"
    assert resolve_precision("float32", has_gpu=True) == "float32"


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be 'auto' or one of"):
        resolve_precision("float8", has_gpu=False)


def test_cpu_flags_are_read_from_the_first_processor(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}


def test_the_gpu_check_asks_the_keras_backend_in_use() -> None:
    import keras

    from training.hardware import gpu_available

    assert keras.backend.backend() == "tensorflow"
    import tensorflow as tf

    assert gpu_available() == bool(tf.config.list_physical_devices("GPU"))


def test_no_cpuinfo_means_no_flags(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("flags", "vector"), [("fpu avx2 avx512f", "AVX-512"), ("fpu avx avx2", "AVX2"), ("fpu", None)]
)
def test_the_cpu_is_described_by_name_cores_and_widest_vector_unit(
    tmp_path: Path, flags: str, vector: str | None
) -> None:
    import os

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n")
    expected = f"Some CPU 9000, {os.cpu_count()} cores" + (f", {vector}" if vector else "")
    assert describe_cpu(cpuinfo) == expected


def test_a_machine_without_cpuinfo_is_still_described(tmp_path: Path) -> None:
    assert describe_cpu(tmp_path / "missing").startswith("unknown CPU, ")


def test_the_training_device_names_the_processor_and_the_keras_backend() -> None:
    # Without a GPU a run is described by its CPU.
    processor = gpu_name() or describe_cpu()
    assert describe_training_device() == f"{processor} (Keras on tensorflow)"
