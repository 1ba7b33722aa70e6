"""How the throughput benchmark turns its bursts into the reported figures."""

from __future__ import annotations

from typing import Any

from benchmarks.support import cpu_busy_fraction
from benchmarks.throughput import summarise


def _burst(images_per_s: float, baseline: float) -> dict[str, Any]:
    return {
        "images": 500,
        "images_per_s": images_per_s,
        "baseline_images_per_s": baseline,
        "ratio_to_raw": round(images_per_s / baseline, 3),
    }


def _report(bursts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "raw": {"forward_images_per_s": 140.0},
        "bursts": bursts,
        "idle_latency": {"upload_to_scored": {"p50_ms": 50.0}},
        "unbatched_burst": {"images_per_s": 35.0},
    }


def test_the_median_burst_by_ratio_stands_for_the_run() -> None:
    # Ranked by ratio, not by speed: the fastest burst had the fastest baseline around it.
    report = _report([_burst(96.0, 140.0), _burst(110.0, 180.0), _burst(105.0, 130.0)])
    summarise(report)
    assert report["burst"]["images_per_s"] == 96.0
    assert report["ratio_to_raw"] == 0.686
    assert report["burst"]["baseline_images_per_s"] == 140.0
    assert report["batched_vs_unbatched"] == round(96.0 / 35.0, 2)


def test_an_even_count_of_bursts_reports_the_upper_median() -> None:
    report = _report([_burst(93.7, 136.0), _burst(102.9, 132.0)])
    summarise(report)
    assert report["ratio_to_raw"] == 0.78


def test_the_cpu_busy_share_is_a_fraction() -> None:
    busy = cpu_busy_fraction(0.05)
    assert busy is None or 0.0 <= busy <= 1.0
