"""BENCHMARKS.md gives each figure beside its baseline and its command, and judges none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report

MACHINE = {
    "cpu": "a CPU",
    "usable_cores": 2,
    "memory_gib": 8.0,
    "load_average_1_5_15": [0.5, 0.4, 0.3],
    "cpu_busy_1s": 0.01,
}


def _inference() -> dict[str, Any]:
    forward = {
        "batch_size": 16,
        "model_predict_ms_per_image": 24.3,
        "served_ms_per_image": 9.2,
        "served_images_per_s": 108.7,
        "speedup": 2.64,
        "repeats": 20,
    }
    upload = {
        "upload": "1024x768 JPEG",
        "jpeg_kib": 79.5,
        "decode_resize_ms": 3.15,
        "model_predict_ms": 84.67,
        "served_ms": 12.69,
        "speedup": 6.67,
        "decode_share_of_served": 0.248,
    }
    return {
        "machine": MACHINE,
        "versions": {"keras": "3"},
        "model": {
            "version": "v1",
            "model_file_mib": 13.0,
            "input_size": 224,
            "test_time_augmentation": True,
        },
        "backend": "tflite",
        "device": "CPU",
        "threads": 2,
        "forward": [forward],
        "agreement": {"images": "24 dermoscopy images", "max_probability_difference": 2e-6},
        "upload": [upload],
    }


def _throughput() -> dict[str, Any]:
    burst = {
        "images": 500,
        "images_per_s": 79.8,
        "seconds": 6.3,
        "batches": 32,
        "mean_batch": 15.6,
        "failed": 0,
        "model_share_of_wall_time": 0.99,
        "raw_before_images_per_s": 102.6,
        "raw_after_images_per_s": 102.9,
        "baseline_images_per_s": 102.7,
        "ratio_to_raw": 0.777,
    }
    latency = {"p50_ms": 48.0, "p95_ms": 56.0, "n": 30}
    return {
        "machine": MACHINE,
        "batch_size": 16,
        "image_source": "synthetic",
        "raw": {
            "model_version": "v1",
            "backend": "tflite",
            "device": "CPU",
            "forward_images_per_s": 115.8,
            "forward_batch_1_images_per_s": 116.2,
            "decode_and_forward_images_per_s": 99.2,
            "forward_and_heatmaps_images_per_s": 92.4,
            "heatmap_ms_per_image": 1.1,
        },
        "bursts": [burst],
        "burst": burst,
        "ratio_to_raw": 0.777,
        "idle_latency": {"upload_to_scored": latency, "row_created_to_finished": latency},
        "worker_rss_mib": 1087.0,
    }


def _queue() -> dict[str, Any]:
    plan = {
        "plan": "Index Scan",
        "execution_ms": 0.44,
        "without_indexes_ms": 14.7,
        "speedup": 33.4,
        "indexes_used": ["case_queue_all_probability_idx"],
    }
    endpoint = {"p50_ms": 13.6, "p95_ms": 17.1, "p95_vs_floor": 2.63}
    return {
        "machine": MACHINE,
        "count": 1000,
        "seed": {"cases": 1000, "flagged": 200, "unreviewed": 100},
        "endpoints": {"queue page": endpoint},
        "queries_per_request": {"queue page": 4},
        "plans": {"unreviewed by probability": plan},
    }


@pytest.fixture
def rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    for name, figures in (
        ("inference", _inference()),
        ("throughput", _throughput()),
        ("queue_latency", _queue()),
    ):
        (tmp_path / f"{name}.json").write_text(json.dumps(figures))
    return report.render()


def test_every_figure_comes_with_its_baseline_and_command(rendered: str) -> None:
    for name in ("inference", "throughput", "queue_latency"):
        assert f"`.venv/bin/python -m benchmarks.{name} --json PATH`" in rendered
    assert "served on CPU by the tflite path" in rendered  # the device and path named
    assert "| 16 | 24.3 | 9.2 | 108.7 | 2.64 | 20 |" in rendered  # served against model.predict
    assert "| 1024x768 JPEG | 79.5 | 3.15 | 84.67 | 12.69 | 6.67 | 0.248 |" in rendered
    assert "| 79.8 | 102.6 | 102.9 | 0.78 |" in rendered  # a burst against its own baseline
    assert "| unreviewed by probability | 0.44 | 14.7 | 33.4x |" in rendered  # without indexes


def test_it_gives_the_heatmaps_cost_against_the_raw_forward(rendered: str) -> None:
    assert "| batched forward + a heatmap overlay drawn per image (batch 16) | 92.4 | 0.90 |" in (
        rendered
    )
    assert "takes 1.1 ms per image in-process" in rendered


def test_it_judges_no_figure(rendered: str) -> None:
    lowered = rendered.lower()
    for verdict in ("target", " met", "not met", "passed", "failed:", "verdict"):
        assert verdict not in lowered


def test_a_benchmark_without_figures_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    assert report.render().count("**Not measured**") == 3
