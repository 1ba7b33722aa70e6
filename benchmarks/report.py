"""Run every benchmark and write BENCHMARKS.md from their figures.

Run from the repository root, with PostgreSQL and Redis up (see README), on a quiet machine:

    .venv/bin/python -m benchmarks.report

It runs `benchmarks.inference`, `benchmarks.throughput` and `benchmarks.queue_latency`, each
with `--json` into var/benchmarks/, one after another so they never compete for the cores, then
renders BENCHMARKS.md. A benchmark that is missing or fails is reported as such in the file and
the others still run; the exit status is 1 when one failed. `--render-only` rewrites
BENCHMARKS.md from the JSON files already there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:
    raise SystemExit("run it from the repository root as: python -m benchmarks.report")

from benchmarks.support import REPO_ROOT, machine

RESULTS_DIR = REPO_ROOT / "var" / "benchmarks"
OUTPUT = REPO_ROOT / "BENCHMARKS.md"
COMMAND = ".venv/bin/python -m benchmarks.report"
# Above this share of the CPU busy before a run, its figures are flagged as measured under load.
BACKGROUND_BUSY = 0.25


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    args: tuple[str, ...] = ()
    timeout_s: int = 3600

    @property
    def json_path(self) -> Path:
        return RESULTS_DIR / f"{self.name}.json"

    @property
    def status_path(self) -> Path:
        return RESULTS_DIR / f"{self.name}.status.json"

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args, "--json", str(self.json_path)]

    def shown_command(self) -> str:
        return " ".join([".venv/bin/python -m", self.module, *self.args, "--json", "PATH"])


BENCHMARKS = (
    Benchmark("inference", "benchmarks.inference"),
    Benchmark("throughput", "benchmarks.throughput"),
    Benchmark("queue_latency", "benchmarks.queue_latency"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--render-only", action="store_true", help="only rewrite BENCHMARKS.md")
    parser.add_argument(
        "--only", nargs="+", choices=[b.name for b in BENCHMARKS], help="run only these"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the report")
    args = parser.parse_args(argv)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    failed = []
    if not args.render_only:
        for benchmark in BENCHMARKS:
            if args.only and benchmark.name not in args.only:
                continue
            if run(benchmark) == "failed":
                failed.append(benchmark.name)
    args.output.write_text(render())
    print(f"wrote {args.output}")
    if failed:
        # The file still says which failed and why; the exit status lets a script notice.
        print(f"failed: {', '.join(failed)} (see var/benchmarks/<name>.status.json)")
        return 1
    return 0


def run(benchmark: Benchmark) -> str:
    """Run one benchmark, keeping its figures or, when it cannot run, the reason why."""
    benchmark.json_path.unlink(missing_ok=True)
    status: dict[str, Any] = {"command": benchmark.shown_command()}
    if importlib.util.find_spec(benchmark.module) is None:
        status.update(outcome="missing", detail=f"{benchmark.module} does not exist yet")
    else:
        print(f"\n=== {benchmark.shown_command()}", flush=True)
        started = time.monotonic()
        try:
            process = subprocess.run(  # noqa: S603
                benchmark.command(),
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=benchmark.timeout_s,
                check=False,
            )
            output = process.stdout + process.stderr
            print(process.stdout, flush=True)
            ok = process.returncode == 0 and benchmark.json_path.is_file()
            status.update(
                outcome="ok" if ok else "failed",
                returncode=process.returncode,
                detail="" if ok else output[-2000:],
            )
        except subprocess.TimeoutExpired:
            status.update(outcome="failed", detail=f"timed out after {benchmark.timeout_s}s")
        status["seconds"] = round(time.monotonic() - started, 1)
    status["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    benchmark.status_path.write_text(json.dumps(status, indent=2) + "\n")
    return str(status["outcome"])


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
        "> For education and research only, not a medical device.",
        "",
        "Regenerate this file on a quiet machine, with PostgreSQL and Redis running (see",
        "README), from the repository root:",
        "",
        "```bash",
        COMMAND,
        "```",
        "",
        "It runs each benchmark below, one after another, with `--json` into `var/benchmarks/`",
        "and rewrites this file (`--render-only` rewrites it from the JSON already there; `--only",
        "throughput` reruns one). Absolute figures depend on the machine and on whatever else",
        "runs on it; each benchmark measures its own baseline in the same run, so the ratios are",
        "what to compare across machines.",
        "",
        "## Machine",
        "",
    ]
    current = machine(sample_busy=False)
    lines += [
        f"- CPU: {current['cpu']}, {current['usable_cores']} usable cores "
        f"({current['logical_cores']} logical)",
        f"- memory: {current['memory_gib']} GiB",
        f"- platform: {current['platform']}, Python {current['python']}",
        f"- load average (1, 5, 15 min) when this file was written: "
        f"{current['load_average_1_5_15']}; each section gives the load during its run.",
        "",
    ]
    sections = {
        "inference": render_inference,
        "throughput": render_throughput,
        "queue_latency": render_queue_latency,
    }
    for benchmark in BENCHMARKS:
        lines += sections[benchmark.name](benchmark)
    return "\n".join(lines).rstrip() + "\n"


def _header(benchmark: Benchmark, title: str) -> tuple[list[str], dict[str, Any] | None]:
    lines = [f"## {title}", "", f"Command: `{benchmark.shown_command()}`", ""]
    status = _load(benchmark.status_path) or {}
    report = _load(benchmark.json_path)
    if report is None:
        outcome = status.get("outcome", "not run")
        detail = status.get("detail") or "no figures in var/benchmarks/ yet"
        lines += [f"**Not measured ({outcome}).**", "", "```", str(detail).strip(), "```", ""]
        return lines, None
    m = report.get("machine", {})
    if m:
        lines += [
            f"Ran on {m.get('cpu')} ({m.get('usable_cores')} cores"
            + (f", {m['memory_gib']} GiB" if m.get("memory_gib") else "")
            + f"); load average {m.get('load_average_1_5_15')} at start"
            + (f", {m['load_average_after']} at end" if m.get("load_average_after") else "")
            + (f"; finished {status['finished_at']}" if status.get("finished_at") else "")
            + ".",
            "",
        ]
        load = (m.get("load_average_1_5_15") or [0.0])[0]
        cores = m.get("usable_cores") or 1
        busy = m.get("cpu_busy_1s")
        # The CPU's busy share right before the run, where recorded: the load average still
        # counts the benchmark that ran just before this one.
        background = None
        if busy is not None and busy > BACKGROUND_BUSY:
            background = f"CPU {busy:.0%} busy in the second before it started"
        elif busy is None and load > 0.5 * cores:
            background = f"1-minute load average {load} on {cores} cores"
        if background:
            lines += [
                f"**Measured under background load** ({background}): absolute figures, and "
                "ratios between figures taken minutes apart, are noisy. Regenerate on a quiet "
                "machine for figures to quote.",
                "",
            ]
        elif busy is not None:
            lines += [f"CPU {busy:.0%} busy in the second before it started.", ""]
    return lines, report


def render_inference(benchmark: Benchmark) -> list[str]:
    lines, report = _header(benchmark, "Inference: the model's forward pass")
    if report is None:
        return lines
    forward = report.get("forward")
    if isinstance(forward, list) and forward and isinstance(forward[0], dict):
        columns = list(forward[0].keys())
        lines += _table(columns, [[row.get(c) for c in columns] for row in forward])
    for key in ("end_to_end_single_upload", "max_probability_difference_vs_keras", "upload"):
        if key in report:
            value = report[key]
            lines += [f"`{key}`:", ""]
            if isinstance(value, list) and value and isinstance(value[0], dict):
                columns = list(value[0].keys())
                lines += _table(columns, [[row.get(c) for c in columns] for row in value])
            else:
                lines += ["```json", json.dumps(value, indent=2), "```", ""]
    return lines + _inference_targets(report)


SINGLE_IMAGE_TARGET = 25.0
DECODE_SHARE_TARGET = 1 / 3


def _inference_targets(report: dict[str, Any]) -> list[str]:
    """The issue's two inference targets, each with the figure that decides it."""
    lines = []
    single = report.get("end_to_end_single_upload")
    if isinstance(single, dict) and "speedup_served_vs_naive" in single:
        speedup = single["speedup_served_vs_naive"]
        needed_ms = single["naive_model_predict_ms"] / SINGLE_IMAGE_TARGET
        verdict = "met" if speedup >= SINGLE_IMAGE_TARGET else "**not met**"
        lines.append(
            f"- Single upload, served path against naive `model.predict`: {speedup}x. Target "
            f">= {SINGLE_IMAGE_TARGET:.0f}x: {verdict} (it needs {needed_ms:.1f} ms end to end; "
            f"the served path takes {single['served_tflite_ms']} ms)."
        )
    for row in report.get("upload", []):
        if not isinstance(row, dict) or "decode_share_floor" not in row:
            continue
        verdict = "met" if row["decode_share"] <= DECODE_SHARE_TARGET else "**not met**"
        lines.append(
            f"- {row['upload']}: decoding and resizing are {row['decode_share']:.0%} of scoring. "
            f"Target <= 33%: {verdict}. Decoding alone, at the smallest scale libjpeg offers and "
            f"with no resizing, takes {row['decode_only_ms']} ms, {row['decode_share_floor']:.0%} "
            "of scoring: no resize can go below that."
        )
    return [*lines, ""] if lines else []


def render_throughput(benchmark: Benchmark) -> list[str]:
    lines, report = _header(benchmark, "Workers: end-to-end scoring throughput and latency")
    if report is None:
        return lines
    raw, burst, idle = report["raw"], report["burst"], report["idle_latency"]
    ratio_verdict = "met" if report.get("meets_ratio_target") else "**not met**"
    latency_verdict = "met" if report.get("meets_latency_target") else "**not met**"
    base = burst.get("baseline_images_per_s", raw.get("baseline_images_per_s"))
    size = report["batch_size"]
    bursts = report.get("bursts", [burst])
    rows = [
        [f"**raw batched forward (batch {size}, in-process): the baseline**, mean of the "
         "measurements right before and after the median burst", f"**{base}**", "**1.00**"],
        ["raw batched forward, before the workers started", raw["forward_images_per_s"],
         _ratio(raw["forward_images_per_s"], base)],
        ["raw forward, batch 1", raw["forward_batch_1_images_per_s"],
         _ratio(raw["forward_batch_1_images_per_s"], base)],
        [f"decode + batched forward (batch {size})", raw["decode_and_forward_images_per_s"],
         _ratio(raw["decode_and_forward_images_per_s"], base)],
        [f"**end to end, burst of {burst['images']} through Redis + Celery, batched (median "
         f"of {len(bursts)} bursts)**", f"**{burst['images_per_s']}**",
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
    lines += [
        f"Model {raw['model_version']} on the {raw['backend']} backend; "
        f"{report['workers']} worker process(es), solo pool, "
        f"{report.get('threads_per_worker') or 'all usable'} inference thread(s) and prefetch "
        f"multiplier {report.get('prefetch_multiplier') or 1} each; "
        f"images: {report['image_source']}.",
        "",
    ]
    lines += _table(["path", "images/s", "ratio to baseline"], rows)
    if "bursts" in report:
        lines += [
            "Each burst against its own baseline, the raw batched forward measured right before "
            "and right after it:",
            "",
        ]
        lines += _table(
            ["burst", "images/s", "raw before", "raw after", "ratio"],
            [
                [number, b["images_per_s"], b["raw_before_images_per_s"],
                 b["raw_after_images_per_s"], f"{b['ratio_to_raw']:.2f}"]
                for number, b in enumerate(report["bursts"], start=1)
            ],
        )  # fmt: skip
    latency = idle["upload_to_scored"]
    on_row = idle["row_created_to_finished"]
    lines += [
        f"- Median burst: {burst['images']} uploads scored in {burst['seconds']} s in "
        f"{burst['batches']} batches (mean {burst['mean_batch']} per forward pass), "
        f"{burst['failed']} failed. Target ratio >= {report['targets']['ratio_to_raw']:.2f}: "
        f"{ratio_verdict}.",
    ]
    if "model_share_of_wall_time" in burst:
        lines.append(
            f"- During the burst the worker spent {burst['model_share_of_wall_time']:.0%} of the "
            "wall time inside `Classifier.predict` (decode + forward, from the rows' "
            "`inference_ms`): the rest is queue, database and task overhead. Unlike the ratio "
            "above, this share is measured under exactly the load the burst ran in."
        )
    if "batched_vs_unbatched" in report:
        lines.append(
            f"- Batching: {report['batched_vs_unbatched']:.2f}x the throughput of one image "
            "per forward pass, same run."
        )
    lines += [
        f"- Upload-to-scored latency on an idle queue ({latency['n']} uploads, one at a time; "
        f"from the upload service call to the score on the row): p50 {latency['p50_ms']:.0f} "
        f"ms, p95 {latency['p95_ms']:.0f} ms (row created to finished: p50 "
        f"{on_row['p50_ms']:.0f} ms). Target p50 < "
        f"{report['targets']['idle_p50_ms']:.0f} ms: {latency_verdict}.",
        f"- Worker resident memory (RSS) with the model loaded: "
        f"{', '.join(f'{value} MiB' for value in report['worker_rss_mib'])}.",
        "",
    ]
    return lines


def render_queue_latency(benchmark: Benchmark) -> list[str]:
    lines, report = _header(benchmark, "The queue and the API at 100,000 cases")
    if report is None:
        return lines
    seed = report["seed"]
    lines += [
        f"{seed['cases']:,} seeded cases (`manage.py seed_cases --count {report['count']}`): "
        f"{seed['flagged']:,} flagged, {seed['unreviewed']:,} awaiting review. Gunicorn with DEBUG "
        "off on loopback; sequential requests as a signed-in reviewer; the floor is the login "
        "page (a session lookup and a template, no case data). Queries per request are counted "
        "in-process at the same size; tests assert that they do not grow with the data.",
        "",
    ]
    rows = []
    for name, row in report["endpoints"].items():
        rows.append(
            [
                name,
                row["p50_ms"],
                row["p95_ms"],
                row["p95_vs_floor"],
                report["queries_per_request"].get(name, ""),
                "yes" if row["meets_target"] else "**no**",
            ]
        )
    target = report["target_p95_ms"]
    lines += _table(
        ["endpoint", "p50 ms", "p95 ms", "p95 / floor", "queries", f"p95 < {target:.0f} ms"], rows
    )
    lines += [
        "Queue page query (20 rows), `EXPLAIN ANALYZE` with and without the queue indexes",
        "",
    ]
    plan_rows = [
        [name, row["execution_ms"], row["without_indexes_ms"], f"{row['speedup']}x",
         ", ".join(row["indexes_used"]) or "-"]
        for name, row in report["plans"].items()
    ]  # fmt: skip
    lines += _table(["query", "indexed ms", "without ms", "speed-up", "indexes used"], plan_rows)
    first_name, first = next(iter(report["plans"].items()))
    lines += [
        f"<details><summary>Plan: {first_name}</summary>",
        "",
        "```",
        first["plan"].strip(),
        "```",
        "",
        "</details>",
        "",
    ]
    return lines


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}" if baseline else "-"


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


if __name__ == "__main__":
    sys.exit(main())
