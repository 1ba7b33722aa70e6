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
# Above this share of the CPU busy before a run, its figures are said to be taken under load.
BACKGROUND_BUSY = 0.25
INTRODUCTION = """Regenerate this file on a quiet machine, with PostgreSQL and Redis running (see
README), from the repository root:

```bash
.venv/bin/python -m benchmarks.report
```

It runs each benchmark below, one after another, with `--json` into `var/benchmarks/`
and rewrites this file (`--render-only` rewrites it from the JSON already there; `--only
throughput` reruns one). Absolute figures depend on the machine and on whatever else
runs on it, which each section names; each benchmark measures its own baseline in the
same run, so the ratios are what to compare across machines.
"""


class Benchmark(NamedTuple):
    name: str
    title: str
    figures: Callable[[dict[str, Any]], list[str]]

    @property
    def command(self) -> str:
        return f".venv/bin/python -m benchmarks.{self.name} --json PATH"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("--render-only", action="store_true", help="only rewrite BENCHMARKS.md")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the report")
    args = parser.parse_args(argv)

    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    failed = [] if args.render_only else [b.name for b in chosen if not run(b)]
    args.output.write_text(render())
    print(f"wrote {args.output}" + (f"; no figures from {', '.join(failed)}" if failed else ""))
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
        return False
    return process.returncode == 0 and path.is_file()


def render() -> str:
    lines = ["# Benchmarks", "", f"> {DISCLAIMER}", "", INTRODUCTION]
    for benchmark in BENCHMARKS:
        lines += [f"## {benchmark.title}", "", f"Command: `{benchmark.command}`", ""]
        try:
            report = json.loads((RESULTS_DIR / f"{benchmark.name}.json").read_text())
        except (OSError, ValueError):
            lines += ["**Not measured**: no figures in var/benchmarks/ from a finished run.", ""]
            continue
        lines += _run_conditions(report) + benchmark.figures(report)
    return "\n".join(lines).rstrip() + "\n"


def _run_conditions(report: dict[str, Any]) -> list[str]:
    """Where and under what load the figures were taken."""
    m = report["machine"]
    lines = [
        f"Ran on {m['cpu']} ({m['usable_cores']} cores, {m['memory_gib']} GiB); load average "
        f"{m['load_average_1_5_15']} at start, {m.get('load_average_after')} at end; finished "
        f"{report.get('finished_at', '-')}.",
        "",
    ]
    # The CPU's busy share right before the run, not the load average, which still counts the
    # benchmark that ran just before this one.
    busy = m.get("cpu_busy_1s")
    if busy is not None and busy > BACKGROUND_BUSY:
        lines += [f"**Measured under background load** (CPU {busy:.0%} busy in the second "
                  "before it started): absolute figures, and ratios between runs, are noisy.",
                  ""]  # fmt: skip
    return lines


def inference_figures(report: dict[str, Any]) -> list[str]:
    """The forward pass per batch size, agreement, and one upload end to end, each against
    `model.predict`."""
    model, agreement = report["model"], report["agreement"]
    threads = f" with {report['threads']} thread(s)" if report.get("threads") else ""
    return [
        f"Model {model['version']} ({model['model_file_mib']} MiB, {model['input_size']} px, "
        f"test-time augmentation {model['test_time_augmentation']}), served on "
        f"{report['device']} by the {report['backend']} path{threads}; "
        + ", ".join(f"{name} {version}" for name, version in report["versions"].items())
        + ".",
        "",
        "The forward pass per image, every view the model asks for, on the same preprocessed "
        "batch; the baseline is the same classifier with `model.predict` as its forward pass:",
        "",
        *_rows_table(report["forward"]),
        f"Largest probability difference between the served path and the baseline, on "
        f"{agreement['images']}: {agreement['max_probability_difference']:.1e}.",
        "",
        "One upload scored end to end, median ms, both ways, and its decoding and resizing alone:",
        "",
        *_rows_table(report["upload"]),
    ]


def throughput_figures(report: dict[str, Any]) -> list[str]:
    """Bursts through Redis and Celery against the raw forward, latency, memory."""
    raw, burst, idle = report["raw"], report["burst"], report["idle_latency"]
    base, size = burst["baseline_images_per_s"], report["batch_size"]

    def row(label: str, rate: float) -> list[Any]:
        return [label, rate, f"{rate / base:.2f}"]

    rows = [
        [f"**raw batched forward (batch {size}, in-process): the baseline**, mean of the "
         "measurements right before and after the median burst", f"**{base}**", "**1.00**"],
        row("raw batched forward, before the workers started", raw["forward_images_per_s"]),
        row("raw forward, batch 1", raw["forward_batch_1_images_per_s"]),
        row(f"decode + batched forward (batch {size})", raw["decode_and_forward_images_per_s"]),
        row(f"batched forward + a heatmap overlay drawn per image (batch {size})",
            raw["forward_and_heatmaps_images_per_s"]),
        [f"**end to end, burst of {burst['images']} through Redis + Celery, batched (median "
         f"of {len(report['bursts'])} bursts)**", f"**{burst['images_per_s']}**",
         f"**{report['ratio_to_raw']:.2f}**"],
    ]  # fmt: skip
    notes = []
    if "unbatched_burst" in report:
        unbatched = report["unbatched_burst"]
        label = f"end to end, burst of {unbatched['images']}, one image per pass (batch size 1)"
        rows.append(row(label, unbatched["images_per_s"]))
        notes = [f"- Batching: {report['batched_vs_unbatched']:.2f}x the throughput of one image "
                 "per pass, same run."]  # fmt: skip
    bursts = [
        [number, b["images_per_s"], b["raw_before_images_per_s"], b["raw_after_images_per_s"],
         f"{b['ratio_to_raw']:.2f}"]
        for number, b in enumerate(report["bursts"], start=1)
    ]  # fmt: skip
    latency, on_row = idle["upload_to_scored"], idle["row_created_to_finished"]
    return [
        f"Model {raw['model_version']} on {raw['device']}, the {raw['backend']} path; one "
        f"worker process, solo pool; images: {report['image_source']}.",
        "",
        *_table(["path", "images/s", "ratio to baseline"], rows),
        "Each burst against its own baseline, the raw batched forward measured right before and "
        "right after it:",
        "",
        *_table(["burst", "images/s", "raw before", "raw after", "ratio"], bursts),
        f"- Median burst: {burst['images']} uploads scored in {burst['seconds']} s in "
        f"{burst['batches']} batches (mean {burst['mean_batch']} per forward pass), "
        f"{burst['failed']} failed.",
        f"- During the burst the worker spent {burst['model_share_of_wall_time']:.0%} of the "
        "wall time inside `Classifier.predict` (decode + forward, from the rows' "
        "`inference_ms`): the rest is queue, database and task overhead, under exactly the load "
        "the burst ran in.",
        *notes,
        f"- Heatmaps: drawing one score's overlay PNG (`inference.explain.overlay_png`) takes "
        f"{raw['heatmap_ms_per_image']} ms per image in-process; the worker draws and stores one "
        "per scored image, so the bursts above include them.",
        f"- Upload-to-scored latency on an idle queue ({latency['n']} uploads, one at a time; "
        f"from the upload service call to the score on the row): p50 {latency['p50_ms']:.0f} "
        f"ms, p95 {latency['p95_ms']:.0f} ms (row created to finished: p50 "
        f"{on_row['p50_ms']:.0f} ms).",
        f"- Worker resident memory (RSS) with the model loaded: {report['worker_rss_mib']} MiB.",
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
    Benchmark("queue_latency", "The queue and the API on a large seeded database", queue_figures),
)


if __name__ == "__main__":
    sys.exit(main())
