"""Choose the numeric precision a training run can afford on this machine."""

from __future__ import annotations

import os
from pathlib import Path

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags; empty where /proc/cpuinfo does not exist."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first CPU's model name; None where /proc/cpuinfo does not exist or lacks it."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def vector_unit(flags: frozenset[str]) -> str | None:
    """The widest SIMD unit among `flags`: one model name covers CPUs with and without
    AVX-512, and it changes every timing."""
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return None


def describe_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """Model name, logical cores and widest vector unit, e.g. "AMD EPYC, 2 cores, AVX2":
    enough to tell apart latencies measured on different machines."""
    name = cpu_model_name(cpuinfo) or "unknown CPU"
    vector = vector_unit(cpu_flags(cpuinfo))
    return ", ".join(part for part in (name, f"{os.cpu_count()} cores", vector) if part)


def gpu_available() -> bool:
    """Whether the Keras backend in use sees a GPU (TensorFlow, JAX or PyTorch)."""
    return gpu_name() is not None


def gpu_name() -> str | None:
    """The first GPU the Keras backend in use sees, by name; None without one."""
    import keras  # here, so the command line parses without loading a backend

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [device for device in jax.devices() if device.platform == "gpu"]
        return str(gpus[0].device_kind) if gpus else None
    if backend == "torch":
        import torch

        return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return str(tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU"))
    return None


def describe_training_device() -> str:
    """Where a run trains, e.g. "NVIDIA H200 (Keras on jax)" or "AMD EPYC, 2 cores, AVX2
    (Keras on tensorflow)": training times mean little without it."""
    import keras

    return f"{gpu_name() or describe_cpu()} (Keras on {keras.backend.backend()})"


def resolve_precision(requested: str, *, has_gpu: bool | None = None) -> str:
    """Turn "auto" into a Keras dtype policy name; pass explicit names through.

    "auto" is mixed float16 on a GPU and float32 on every CPU. A whole-network Lite0 step at
    224 px, batch 32 on 2 cores (docs/history.md) was slower in mixed bfloat16 than in float32 on
    each CPU measured: five times on AVX2 only, where oneDNN emulates bfloat16; 1.6 times on a
    Zen 4 with AVX512-BF16; and 1.8 times (3.07 s against 1.70 s) even on a Xeon with AMX
    bfloat16 tiles.
    """
    if requested != "auto":
        if requested not in PRECISIONS:
            raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, not {requested!r}")
        return requested
    if has_gpu is None:
        has_gpu = gpu_available()
    if has_gpu:
        # Keras wraps the optimizer in loss scaling for float16 itself.
        return "mixed_float16"
    return "float32"
