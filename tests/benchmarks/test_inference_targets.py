"""How BENCHMARKS.md states the inference targets from the benchmark's figures."""

from __future__ import annotations

from typing import Any

from benchmarks.report import _inference_targets


def _upload(name: str, share: float, floor: float) -> dict[str, Any]:
    return {
        "upload": name,
        "decode_share": share,
        "decode_only_ms": 15.5,
        "decode_share_floor": floor,
    }


def test_each_target_is_judged_by_its_own_figure() -> None:
    report = {
        "end_to_end_single_upload": {
            "naive_model_predict_ms": 200.0,
            "served_tflite_ms": 20.0,
            "speedup_served_vs_naive": 10.0,
        },
        "upload": [_upload("256x256 JPEG", 0.22, 0.04), _upload("4032x3024 JPEG", 0.57, 0.49)],
    }
    single, small, large, blank = _inference_targets(report)
    assert "10.0x" in single
    assert "**not met**" in single
    assert "8.0 ms" in single
    assert small.startswith("- 256x256 JPEG")
    assert "Target <= 33%: met" in small
    assert "**not met**" in large
    assert "49%" in large
    assert blank == ""


def test_a_fast_enough_upload_meets_the_single_image_target() -> None:
    report = {
        "end_to_end_single_upload": {
            "naive_model_predict_ms": 300.0,
            "served_tflite_ms": 10.0,
            "speedup_served_vs_naive": 30.0,
        }
    }
    assert "Target >= 25x: met" in _inference_targets(report)[0]


def test_older_reports_without_the_figures_add_nothing() -> None:
    assert _inference_targets({"upload": [{"upload": "x", "decode_share": 0.2}]}) == []
