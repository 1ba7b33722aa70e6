"""Run every benchmark and write BENCHMARKS.md from their figures.

Run from the repository root, with PostgreSQL and Redis up (see README), on a quiet machine:

    .venv/bin/python -m benchmarks.report [--only throughput] [--render-only]

It runs `benchmarks.inference`, `benchmarks.throughput` and `benchmarks.queue_latency`, each
with `--json` into var/benchmarks/, one after another so they never compete for the cores, then
renders BENCHMARKS.md; a benchmark that fails is said to be unmeasured there, and the others
still run. `--render-only` rewrites BENCHMARKS.md from the JSON files already there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.support import REPO_ROOT
from inference.disclaimer import DISCLAIMER

RESULTS_DIR = REPO_ROOT / "var" / "benchmarks"
OUTPUT = REPO_ROOT / "BENCHMARKS.md"
TIMEOUT_SECONDS = 3600
# Above this share of the CPU busy before a run, its figures are flagged as measured under load.
BACKGROUND_BUSY = 0.25


class Benchmark(NamedTuple):
    name: str
    title: str
    figures: Callable[[dict[str, Any]], list[str]]

    @property
    def command(self) -> str:
        return f".venv/bin/python -m benchmarks.{self.name} --json PATH"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--render-only", action="store_true", help="only rewrite BENCHMARKS.md")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the report")
    args = parser.parse_args(argv)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    failed = [] if args.render_only else [b.name for b in chosen if not run(b)]
    args.output.write_text(render())
    print(f"wrote {args.output}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def run(benchmark: Benchmark) -> bool:
    """Run one benchmark, its output on this terminal; whether it wrote its figures."""
    path = RESULTS_DIR / f"{benchmark.name}.json"
    path.unlink(missing_ok=True)
    print(f"\n=== {benchmark.command}", flush=True)
    command = [sys.executable, "-m", f"benchmarks.{benchmark.name}", "--json", str(path)]
    try:
        # This interpreter and a module of ours, nothing from outside.
        process = subprocess.run(command, cwd=REPO_ROOT, timeout=TIMEOUT_SECONDS, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        print(f"{benchmark.name}: timed out after {TIMEOUT_SECONDS} s")
        return False
    return process.returncode == 0 and path.is_file()


def _load(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def render() -> str:
    lines = [
        "# Benchmarks",
        "",
        f"> {DISCLAIMER}",
        "",
        "Regenerate this file on a quiet machine, with PostgreSQL and Redis running (see",
        "README), from the repository root:",
        "",
        "```bash",
        ".venv/bin/python -m benchmarks.report",
        "```",
        "",
        "It runs each benchmark below, one after another, with `--json` into `var/benchmarks/`",
        "and rewrites this file (`--render-only` rewrites it from the JSON already there; `--only",
        "throughput` reruns one). Absolute figures depend on the machine and on whatever else",
        "runs on it, which each section names; each benchmark measures its own baseline in the",
        "same run, so the ratios are what to compare across machines.",
        "",
    ]
    for benchmark in BENCHMARKS:
        lines += [f"## {benchmark.title}", "", f"Command: `{benchmark.command}`", ""]
        report = _load(RESULTS_DIR / f"{benchmark.name}.json")
        if report is None:
            lines += ["**Not measured**: no figures in var/benchmarks/ from a finished run.", ""]
        else:
            lines += _run_conditions(report) + benchmark.figures(report)
    return "\n".join(lines).rstrip() + "\n"


def _run_conditions(report: dict[str, Any]) -> list[str]:
    """Where and under what load the figures were taken."""
    m = report.get("machine", {})
    lines = [
        f"Ran on {m.get('cpu')} ({m.get('usable_cores')} cores, {m.get('memory_gib')} GiB); "
        f"load average {m.get('load_average_1_5_15')} at start, "
        f"{m.get('load_average_after')} at end; finished {report.get('finished_at', '-')}.",
        "",
    ]
    busy = m.get("cpu_busy_1s")
    # The CPU's busy share right before the run: the load average still counts the benchmark
    # that ran just before this one.
    if busy is not None and busy > BACKGROUND_BUSY:
        lines += [
            f"**Measured under background load** (CPU {busy:.0%} busy in the second before it "
            "started): absolute figures, and ratios between figures taken minutes apart, are "
            "noisy.",
            "",
        ]
    return lines


def inference_figures(report: dict[str, Any]) -> list[str]:
    """The forward pass per path and batch size, agreement, one upload's parts, end to end."""
    model = report["model"]
    lines = [
        f"Model {model['version']} ({model['model_file_mib']} MiB, {model['input_size']} px, "
        f"test-time augmentation {model['test_time_augmentation']}); LiteRT with "
        f"{report['interpreter_threads']} thread(s)"
        + "".join(f", {name} {version}" for name, version in report.get("versions", {}).items())
        + ".",
        _devices_line(report),
        "",
        "The forward pass, one view, per image; the baseline is `model.predict` on the same batch:",
        "",
        *_rows_table(report["forward"]),
    ]
    agreement = report["max_probability_difference_vs_keras"]
    lines += [
        f"Largest probability difference from the traced Keras call, on {agreement['images']}: "
        + ", ".join(f"{name} {value:.1e}" for name, value in agreement["per_path"].items())
        + ".",
        "",
        "One upload on the served path, decoding plus resizing against the forward pass (every "
        "test-time view the model asks for):",
        "",
        *_rows_table(report["upload"]),
    ]
    single = report["end_to_end_single_upload"]
    lines += [
        "One 1024x768 upload end to end, median ms: `model.predict` per view "
        f"{single['naive_model_predict_ms']} (the baseline), traced Keras "
        f"{single['keras_traced_ms']}, served {single['served_tflite_ms']} "
        f"({single['speedup_served_vs_naive']}x the baseline).",
        "",
    ]
    return lines


def _devices_line(report: dict[str, Any]) -> str:
    devices = report.get("devices") or {}
    gpus = devices.get("gpu")
    gpu = (
        f"GPU {', '.join(gpus)} ({report.get('gpu_precision')})"
        if gpus
        else "no GPU (the GPU path is not timed)"
    )
    half = report.get("gpu_half_precision_on_test_split")
    if half:
        gpu += (
            f"; float16 against float32 on {half['images']} test images: largest probability "
            f"difference {half['max_probability_difference']:.1e}, "
            f"{half['flags_differing']} high-risk flags differ"
        )
    return f"Devices: CPU {devices.get('cpu') or 'unknown'}; {gpu}."


def throughput_figures(report: dict[str, Any]) -> list[str]:
    """Bursts through Redis and Celery against the raw forward, latency, memory."""
    raw, burst, idle = report["raw"], report["burst"], report["idle_latency"]
    base = burst["baseline_images_per_s"]
    size = report["batch_size"]
    rows = [
        [f"**raw batched forward (batch {size}, in-process): the baseline**, mean of the "
         "measurements right before and after the median burst", f"**{base}**", "**1.00**"],
        ["raw batched forward, before the workers started", raw["forward_images_per_s"],
         _ratio(raw["forward_images_per_s"], base)],
        ["raw forward, batch 1", raw["forward_batch_1_images_per_s"],
         _ratio(raw["forward_batch_1_images_per_s"], base)],
        [f"decode + batched forward (batch {size})", raw["decode_and_forward_images_per_s"],
         _ratio(raw["decode_and_forward_images_per_s"], base)],
        *([[f"batched forward + a heatmap overlay drawn per image (batch {size})",
            raw["forward_and_heatmaps_images_per_s"],
            _ratio(raw["forward_and_heatmaps_images_per_s"], base)]]
          if "forward_and_heatmaps_images_per_s" in raw else []),
        [f"**end to end, burst of {burst['images']} through Redis + Celery, batched (median "
         f"of {len(report['bursts'])} bursts)**", f"**{burst['images_per_s']}**",
         f"**{report['ratio_to_raw']:.2f}**"],
    ]  # fmt: skip
    if "unbatched_burst" in report:
        unbatched = report["unbatched_burst"]
        rows.append(
            [
                f"end to end, burst of {unbatched['images']}, one image per pass (batch size 1)",
                unbatched["images_per_s"],
                f"{report['unbatched_ratio_to_raw']:.2f}",
            ]
        )
    bursts = [
        [number, b["images_per_s"], b["raw_before_images_per_s"], b["raw_after_images_per_s"],
         f"{b['ratio_to_raw']:.2f}"]
        for number, b in enumerate(report["bursts"], start=1)
    ]  # fmt: skip
    latency, on_row = idle["upload_to_scored"], idle["row_created_to_finished"]
    notes = [
        f"- Median burst: {burst['images']} uploads scored in {burst['seconds']} s in "
        f"{burst['batches']} batches (mean {burst['mean_batch']} per forward pass), "
        f"{burst['failed']} failed.",
        f"- During the burst the worker spent {burst['model_share_of_wall_time']:.0%} of the "
        "wall time inside `Classifier.predict` (decode + forward, from the rows' "
        "`inference_ms`): the rest is queue, database and task overhead, under exactly the load "
        "the burst ran in.",
        f"- Upload-to-scored latency on an idle queue ({latency['n']} uploads, one at a time; "
        f"from the upload service call to the score on the row): p50 {latency['p50_ms']:.0f} "
        f"ms, p95 {latency['p95_ms']:.0f} ms (row created to finished: p50 "
        f"{on_row['p50_ms']:.0f} ms).",
        f"- Worker resident memory (RSS) with the model loaded: "
        f"{', '.join(f'{value} MiB' for value in report['worker_rss_mib'])}.",
    ]
    if "heatmap_ms_per_image" in raw:
        notes.insert(
            2,
            f"- Heatmaps: drawing one score's overlay PNG (`inference.explain.overlay_png`) "
            f"takes {raw['heatmap_ms_per_image']} ms per image in-process; the worker draws and "
            "stores one per scored image, while the next batch's forward pass runs, so the "
            "bursts above include them.",
        )
    if "batched_vs_unbatched" in report:
        notes.insert(
            2,
            f"- Batching: {report['batched_vs_unbatched']:.2f}x the throughput of one image per "
            "task, same run.",
        )
    return [
        f"Model {raw['model_version']} on {raw.get('device', 'CPU')}, the {raw['backend']} path; "
        f"{report['workers']} worker process(es), solo pool, "
        f"{report.get('threads_per_worker') or 'all usable'} inference thread(s) and prefetch "
        f"multiplier {report.get('prefetch_multiplier') or 1} each; "
        f"images: {report['image_source']}.",
        "",
        *_table(["path", "images/s", "ratio to baseline"], rows),
        "Each burst against its own baseline, the raw batched forward measured right before and "
        "right after it:",
        "",
        *_table(["burst", "images/s", "raw before", "raw after", "ratio"], bursts),
        *notes,
        "",
    ]


def queue_figures(report: dict[str, Any]) -> list[str]:
    """Each page and API list's latency against the login page, and the queue's plans."""
    seed = report["seed"]
    rows = [
        [name, row["p50_ms"], row["p95_ms"], row["p95_vs_floor"],
         report["queries_per_request"].get(name, "")]
        for name, row in report["endpoints"].items()
    ]  # fmt: skip
    plan_rows = [
        [name, row["execution_ms"], row["without_indexes_ms"], f"{row['speedup']}x",
         ", ".join(row["indexes_used"]) or "-"]
        for name, row in report["plans"].items()
    ]  # fmt: skip
    first_name, first = next(iter(report["plans"].items()))
    return [
        f"{seed['cases']:,} seeded cases (`manage.py seed_cases --count {report['count']}`): "
        f"{seed['flagged']:,} flagged, {seed['unreviewed']:,} awaiting review. Gunicorn with "
        "DEBUG off on loopback; sequential requests as a signed-in reviewer; the floor, the "
        "baseline, is the login page (a session lookup and a template, no case data). Queries "
        "per request are counted in-process at the same size; tests assert that they do not "
        "grow with the data.",
        "",
        *_table(["endpoint", "p50 ms", "p95 ms", "p95 / floor", "queries"], rows),
        "The queue page's query (20 rows), `EXPLAIN ANALYZE` with the queue indexes and without "
        "them (the baseline):",
        "",
        *_table(["query", "indexed ms", "without ms", "speed-up", "indexes used"], plan_rows),
        f"<details><summary>Plan: {first_name}</summary>",
        "",
        "```",
        first["plan"].strip(),
        "```",
        "",
        "</details>",
        "",
    ]


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}" if baseline else "-"


def _rows_table(rows: list[dict[str, Any]]) -> list[str]:
    columns = list(rows[0]) if rows else []
    return _table(columns, [[row.get(column) for column in columns] for row in rows])


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


BENCHMARKS = (
    Benchmark("inference", "Inference: the model's forward pass", inference_figures),
    Benchmark(
        "throughput", "Workers: end-to-end scoring throughput and latency", throughput_figures
    ),
    Benchmark("queue_latency", "The queue and the API at 100,000 cases", queue_figures),
)


if __name__ == "__main__":
    sys.exit(main())
