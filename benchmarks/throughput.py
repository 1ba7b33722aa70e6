"""End-to-end scoring throughput and latency through Redis and Celery, against the raw model.

Run from the repository root (PostgreSQL and Redis on DATABASE_URL's and CELERY_BROKER_URL's
servers, default 127.0.0.1):

    python -m benchmarks.throughput [--images 500] [--batch-size 16] [--json PATH]

In a scratch database (dermatriage_bench_throughput, dropped afterwards) and a queue of its own,
it measures, all in one run:

1. the raw batched forward throughput of the served model in this process (images/s through
   `Classifier.predict_pixels` on batches of --batch-size preprocessed images): the baseline;
   beside it, the same with the heatmap overlay PNG drawn for each image, as the worker does;
2. --bursts bursts: --images uploads stored through `case_images_upload` while the worker is
   held (Celery remote control), then released; throughput = images / (last finished -
   release), and its ratio to (1) measured right before and right after that burst; the
   median burst by ratio is the figure reported;
3. the same burst scored one image per forward pass (DERMATRIAGE_SCORING_BATCH_SIZE=1);
4. upload-to-scored latency on an idle queue: one upload at a time, waiting for its score;
5. the worker's resident memory (RSS) with the model loaded.

Images are 256x256 JPEGs from the dermoscopy set (DERMATRIAGE_DATA_DIR) when present, otherwise
synthetic lesions. Figures depend on the machine and whatever else runs on it; the ratios,
measured in the same run, are what to compare.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:
    raise SystemExit("run it from the repository root as: python -m benchmarks.throughput")

from benchmarks.support import (
    REPO_ROOT,
    bench_env,
    command_line,
    django_setup,
    json_write,
    load_average,
    machine,
    rss_mib,
    scratch_database,
    stop_process,
    summary_ms,
    wait_until,
)

DATABASE_NAME = "dermatriage_bench_throughput"
UPLOADS_PER_TRANSACTION = 25


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    name: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--images", type=int, default=500, help="uploads in each burst")
    parser.add_argument(
        "--bursts",
        type=int,
        default=3,
        help="bursts, each between two baseline measurements; the median ratio is reported",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="DERMATRIAGE_SCORING_BATCH_SIZE")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (solo pool)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="DERMATRIAGE_INFERENCE_THREADS per worker (default: the cores it may use)",
    )
    parser.add_argument(
        "--unbatched-images", type=int, default=200, help="burst scored one per pass (0: skip)"
    )
    parser.add_argument("--idle-samples", type=int, default=30, help="idle-queue uploads timed")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.images < 1 or args.batch_size < 1 or args.bursts < 1:
        parser.error("--images, --batch-size and --bursts must be positive")
    worker_settings = (
        {} if args.threads is None else {"DERMATRIAGE_INFERENCE_THREADS": str(args.threads)}
    )

    report: dict[str, Any] = {
        "command": command_line(),
        "machine": machine(),
        "images": args.images,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "threads_per_worker": args.threads,
    }
    media_root = Path(tempfile.mkdtemp(prefix="dermatriage-bench-media-"))
    log_dir = Path(tempfile.mkdtemp(prefix="dermatriage-bench-logs-"))
    queue = f"dermatriage-bench-{uuid.uuid4().hex[:8]}"
    try:
        with scratch_database(DATABASE_NAME, keep=args.keep) as url:
            env = bench_env(database_url=url, media_root=media_root, queue=queue)
            django_setup(env)
            images, source = lesion_jpegs(64)
            report["image_source"] = source
            raw = RawForward(images, batch_size=args.batch_size)
            report["raw"] = raw.measure()
            print_raw(report["raw"], args.batch_size)

            uploader = Uploader(images)
            with workers(
                {**env, **worker_settings},
                count=args.workers,
                batch_size=args.batch_size,
                log_dir=log_dir,
            ) as ws:
                uploader.wait_scored(uploader.upload(1), timeout=300)  # loads the model
                report["bursts"] = [
                    measured_burst(ws, uploader, raw, count=args.images) for _ in range(args.bursts)
                ]
                report["idle_latency"] = idle_latency(uploader, samples=args.idle_samples)
                report["worker_rss_mib"] = [rss_mib(w.process.pid) for w in ws]
            if args.unbatched_images:
                with workers(
                    {**env, **worker_settings}, count=args.workers, batch_size=1, log_dir=log_dir
                ) as ws:
                    uploader.wait_scored(uploader.upload(1), timeout=300)
                    report["unbatched_burst"] = burst(ws, uploader, count=args.unbatched_images)
            report["machine"]["load_average_after"] = load_average()
            _queue_drop()
    finally:
        shutil.rmtree(media_root, ignore_errors=True)
        shutil.rmtree(log_dir, ignore_errors=True)
    summarise(report)
    print_report(report)
    json_write(args.json, report)
    return 0


def measured_burst(
    ws: list[Worker], uploader: Uploader, raw: RawForward, *, count: int
) -> dict[str, Any]:
    """One burst between two measurements of the raw forward, and its ratio to their mean.

    The raw forward's speed drifts on a shared machine between runs minutes apart, so every
    burst gets a baseline of its own, taken right before and right after it.
    """
    before = raw.forward()
    result = burst(ws, uploader, count=count)
    # Measured once the workers have also consumed the wake-ups left behind the drain (one per
    # upload request): they would compete for the cores.
    result["queue_empty_after_s"] = wait_queue_consumed()
    after = raw.forward()
    baseline = (before + after) / 2
    result["raw_before_images_per_s"] = before
    result["raw_after_images_per_s"] = after
    result["baseline_images_per_s"] = round(baseline, 2)
    result["ratio_to_raw"] = round(result["images_per_s"] / baseline, 3)
    return result


def wait_queue_consumed(timeout: float = 300) -> float:
    """Wait until the run's queue holds no message; the seconds it took."""
    from django.conf import settings

    from webapp.config.celery import app

    started = time.monotonic()
    queue = settings.CELERY_TASK_DEFAULT_QUEUE

    def consumed() -> bool:
        from amqp.exceptions import ChannelError

        with app.connection_for_read() as connection:
            channel: Any = connection.default_channel
            try:
                declared = channel.queue_declare(queue=queue, passive=True)
            except ChannelError:
                return True  # Redis drops an emptied list: no queue, no messages
            return int(declared.message_count) == 0

    wait_until(consumed, timeout=timeout, what="the workers to consume the queue", interval=0.2)
    time.sleep(1.0)  # the deliveries a worker had already reserved
    return round(time.monotonic() - started, 2)


def _queue_drop() -> None:
    """Delete what is left of this run's queue (the wake-ups left are all consumed)."""
    from webapp.config.celery import app

    app.control.purge()


def lesion_jpegs(count: int) -> tuple[list[bytes], str]:
    """Small lesion JPEGs: real dermoscopy images when the data set is here, else synthetic."""
    import PIL.Image

    from training.data import default_data_dir

    images_dir = default_data_dir() / "images"
    files = sorted(images_dir.glob("*.jpg"))[:count] if images_dir.is_dir() else []
    if files:
        return [path.read_bytes() for path in files], f"dermoscopy set ({len(files)} files)"
    from inference.synthetic import synthetic_lesion

    jpegs = []
    for seed in range(count):
        buffer = io.BytesIO()
        PIL.Image.fromarray(synthetic_lesion(seed)).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return jpegs, f"synthetic 256x256 lesions ({count})"


class RawForward:
    """The served model in this process, timed on batches of preprocessed images."""

    def __init__(self, images: list[bytes], *, batch_size: int) -> None:
        from inference import load_classifier

        started = time.perf_counter()
        self.classifier = load_classifier(path=None)
        self.load_seconds = time.perf_counter() - started
        self.batch_size = batch_size
        self.batch = [images[i % len(images)] for i in range(batch_size)]
        self.pixels = self.classifier.preprocess(self.batch)
        self.sizes = [_image_size(data) for data in self.batch]

    def images_per_s(self, call: Callable[[], object], size: int, *, budget_s: float) -> float:
        call()  # warm-up: the first call may allocate or trace
        calls = 0
        started = time.perf_counter()
        while calls < 3 or time.perf_counter() - started < budget_s:
            call()
            calls += 1
        return round(calls * size / (time.perf_counter() - started), 2)

    def forward(self, *, budget_s: float = 4.0) -> float:
        return self.images_per_s(
            lambda: self.classifier.predict_pixels(self.pixels), self.batch_size, budget_s=budget_s
        )

    def forward_and_heatmaps(self) -> None:
        """A batch's forward pass and the heatmap overlay the worker draws for each image."""
        from inference.explain import overlay_png

        results = self.classifier.predict_pixels(self.pixels)
        for result, (width, height) in zip(results, self.sizes, strict=True):
            if result.heatmap is not None:
                overlay_png(result.heatmap, width=width, height=height)

    def heatmaps_ms_per_image(self) -> float:
        """Drawing one image's heatmap overlay PNG alone, in milliseconds."""
        from inference.explain import overlay_png

        results = self.classifier.predict_pixels(self.pixels)
        heatmaps = [result.heatmap for result in results if result.heatmap is not None]
        if len(heatmaps) < len(results):
            return 0.0

        def draw() -> None:
            for heatmap, (width, height) in zip(heatmaps, self.sizes, strict=True):
                overlay_png(heatmap, width=width, height=height)

        return round(1000 / self.images_per_s(draw, len(heatmaps), budget_s=2.0), 2)

    def measure(self) -> dict[str, Any]:
        """The baseline and its neighbours: batch 1, with JPEG decoding included, and with the
        heatmap overlays drawn."""
        pixels_one = self.pixels[:1]
        return {
            "backend": self.classifier.backend,
            # The worker loads the same way, so this is where the bursts were scored too.
            "device": self.classifier.device,
            "model_version": self.classifier.version,
            "load_seconds": round(self.load_seconds, 2),
            "forward_images_per_s": self.forward(),
            "forward_batch_1_images_per_s": self.images_per_s(
                lambda: self.classifier.predict_pixels(pixels_one), 1, budget_s=3.0
            ),
            "decode_and_forward_images_per_s": self.images_per_s(
                lambda: self.classifier.predict(self.batch), self.batch_size, budget_s=3.0
            ),
            "forward_and_heatmaps_images_per_s": self.images_per_s(
                self.forward_and_heatmaps, self.batch_size, budget_s=3.0
            ),
            "heatmap_ms_per_image": self.heatmaps_ms_per_image(),
        }


def _image_size(data: bytes) -> tuple[int, int]:
    import PIL.Image

    with PIL.Image.open(io.BytesIO(data)) as image:
        return image.size


class Uploader:
    """Stores uploads through the case service, as the web app would, and waits for scores."""

    def __init__(self, images: list[bytes]) -> None:
        from webapp.accounts.models import Role, User

        self.images = images
        self.sent = 0
        self.requests = 0
        self.user, _ = User.objects.get_or_create(
            username="bench-clinician", defaults={"role": Role.CLINICIAN}
        )

    def _new_case(self) -> Any:
        from webapp.cases.models import BodySite
        from webapp.cases.services import case_create

        self.requests += 1
        return case_create(
            created_by=self.user,
            subject_ref=f"BENCH-{self.requests}",
            body_site=BodySite.TRUNK_POSTERIOR,
        )

    def upload(self, count: int) -> list[int]:
        """Upload `count` images (several per request, as a clinician's batch would be)."""
        from django.core.files.uploadedfile import SimpleUploadedFile

        from webapp.casework.services import case_images_upload
        from webapp.scoring.models import Prediction

        image_ids: list[int] = []
        while len(image_ids) < count:
            files = []
            for _ in range(min(UPLOADS_PER_TRANSACTION, count - len(image_ids))):
                data = self.images[self.sent % len(self.images)]
                files.append(SimpleUploadedFile(f"lesion-{self.sent}.jpg", data, "image/jpeg"))
                self.sent += 1
            # A case per request, as a clinician would upload a lesion's images together:
            # one case collecting every upload would make each queue refresh scan them all.
            stored = case_images_upload(case=self._new_case(), files=files, uploaded_by=self.user)
            image_ids += [image.pk for image in stored.images]
        return list(Prediction.objects.filter(image_id__in=image_ids).values_list("pk", flat=True))

    def finished(self, prediction_ids: list[int]) -> int:
        from webapp.scoring.models import Prediction, PredictionStatus

        # By id range, not an IN list of every id: this poll runs beside the workers being
        # measured and should cost them as little CPU as possible.
        return Prediction.objects.filter(
            pk__gte=min(prediction_ids),
            pk__lte=max(prediction_ids),
            status__in=(PredictionStatus.DONE, PredictionStatus.FAILED),
        ).count()

    def wait_scored(
        self, prediction_ids: list[int], *, timeout: float, interval: float = 0.1
    ) -> None:
        wait_until(
            lambda: self.finished(prediction_ids) == len(prediction_ids),
            timeout=timeout,
            what=f"{len(prediction_ids)} predictions to be scored",
            interval=interval,
        )


@contextmanager
def workers(
    env: dict[str, str], *, count: int, batch_size: int, log_dir: Path
) -> Iterator[list[Worker]]:
    """Start `count` solo-pool Celery worker processes on the benchmark's queue."""
    started: list[Worker] = []
    worker_env = {
        **os.environ,
        **env,
        "DERMATRIAGE_SCORING_BATCH_SIZE": str(batch_size),
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    try:
        for number in range(count):
            name = f"bench{number}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
            log_path = log_dir / f"{name.split('@')[0]}.log"
            command = [
                sys.executable, "-m", "celery", "-A", "webapp.config", "worker",
                "--pool=solo", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                "--without-heartbeat", f"--hostname={name}",
                f"--queues={env['CELERY_TASK_DEFAULT_QUEUE']}",
            ]  # fmt: skip
            with log_path.open("wb") as log:
                process = subprocess.Popen(  # noqa: S603
                    command, cwd=REPO_ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT
                )
            started.append(Worker(process=process, name=name, log_path=log_path))
        for worker in started:
            _wait_ready(worker)
        yield started
    finally:
        # All asked at once, so they shut down side by side.
        for worker in started:
            worker.process.terminate()
        for worker in started:
            stop_process(worker.process)


def _wait_ready(worker: Worker, timeout: float = 120) -> None:
    from webapp.config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise SystemExit(f"worker {worker.name} exited:\n{worker.log()[-3000:]}")
        if app.control.ping(destination=[worker.name], timeout=0.5):
            return
    raise SystemExit(f"worker {worker.name} did not start:\n{worker.log()[-3000:]}")


@contextmanager
def held(ws: list[Worker]) -> Iterator[None]:
    """Keep the workers from consuming until the block ends, so a burst queues up first."""
    from django.conf import settings

    from webapp.config.celery import app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    names = [worker.name for worker in ws]
    replies = app.control.cancel_consumer(queue, destination=names, reply=True) or []
    if len(replies) != len(names):
        raise SystemExit(f"only {len(replies)} of {len(names)} workers answered the hold")
    try:
        yield
    finally:
        app.control.add_consumer(queue, destination=names, reply=True)


def burst(ws: list[Worker], uploader: Uploader, *, count: int) -> dict[str, Any]:
    """Queue `count` uploads while the workers are held, release them, time until all done."""
    from django.db.models import Max, Min, Sum

    from webapp.scoring.models import Prediction, PredictionStatus

    print(f"burst of {count} uploads ...", flush=True)
    with held(ws):
        prediction_ids = uploader.upload(count)
        released = time.time()
    # The burst is timed from the rows' own finish times, so a slow poll loses no accuracy.
    uploader.wait_scored(prediction_ids, timeout=max(600.0, count * 2.0), interval=1.0)
    rows = Prediction.objects.filter(pk__in=prediction_ids)
    span = rows.aggregate(
        first=Min("started_at"), last=Max("finished_at"), model_ms=Sum("inference_ms")
    )
    seconds = span["last"].timestamp() - released
    # Each row carries its share of its batch's predict call (decode + forward), so the sum is
    # the time the workers spent in the model, under the very load the burst ran in.
    model_seconds = (span["model_ms"] or 0) / 1000 / len(ws)
    batches = rows.values("started_at").distinct().count()
    done = rows.filter(status=PredictionStatus.DONE).count()
    return {
        "images": count,
        "done": done,
        "failed": count - done,
        "seconds": round(seconds, 2),
        "images_per_s": round(count / seconds, 2),
        "batches": batches,
        "mean_batch": round(count / batches, 1),
        "first_start_after_release_s": round(span["first"].timestamp() - released, 3),
        "model_seconds_per_worker": round(model_seconds, 2),
        "model_share_of_wall_time": round(model_seconds / seconds, 3),
    }


def idle_latency(uploader: Uploader, *, samples: int) -> dict[str, Any]:
    """Upload one image at a time on an idle queue; time until its score is on the row."""
    from webapp.scoring.models import Prediction, PredictionStatus

    print(f"idle-queue latency over {samples} uploads ...", flush=True)
    observed: list[float] = []
    on_row: list[float] = []
    for _ in range(samples):
        time.sleep(0.2)  # let the worker go idle
        started = time.perf_counter()
        (prediction_id,) = uploader.upload(1)
        while not Prediction.objects.filter(
            pk=prediction_id, status__in=(PredictionStatus.DONE, PredictionStatus.FAILED)
        ).exists():
            time.sleep(0.002)
        observed.append(time.perf_counter() - started)
        row = Prediction.objects.get(pk=prediction_id)
        if row.finished_at is not None:
            on_row.append((row.finished_at - row.created_at).total_seconds())
    return {"upload_to_scored": summary_ms(observed), "row_created_to_finished": summary_ms(on_row)}


def summarise(report: dict[str, Any]) -> None:
    # The median burst by ratio stands for the run (the upper median for an even count).
    ranked = sorted(report["bursts"], key=lambda b: b["ratio_to_raw"])
    median = report["burst"] = ranked[len(ranked) // 2]
    raw = median["baseline_images_per_s"]
    burst_rate = median["images_per_s"]
    report["ratio_to_raw"] = median["ratio_to_raw"]
    if "unbatched_burst" in report:
        unbatched = report["unbatched_burst"]["images_per_s"]
        report["batched_vs_unbatched"] = round(burst_rate / unbatched, 2)
        report["unbatched_ratio_to_raw"] = round(unbatched / raw, 3)


def print_raw(raw: dict[str, Any], batch_size: int) -> None:
    print(f"model {raw['model_version']} on {raw.get('device', 'CPU')}, {raw['backend']} path, "
          f"loaded in {raw['load_seconds']}s")  # fmt: skip
    print(f"  raw forward, batch {batch_size}: {raw['forward_images_per_s']:.1f} images/s "
          f"(batch 1: {raw['forward_batch_1_images_per_s']:.1f}; with decoding: "
          f"{raw['decode_and_forward_images_per_s']:.1f})", flush=True)  # fmt: skip


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nmachine: {m['cpu']}, {m['usable_cores']} cores, {m['memory_gib']} GiB; load "
          f"{m['load_average_1_5_15']} at start, {m.get('load_average_after')} at end")  # fmt: skip
    for number, b in enumerate(report["bursts"], start=1):
        print(f"burst {number}: {b['images']} uploads in {b['seconds']}s = "
              f"{b['images_per_s']:.1f} images/s in {b['batches']} batches (mean "
              f"{b['mean_batch']}), {b['failed']} failed; raw batched forward "
              f"{b['raw_before_images_per_s']:.1f} before, {b['raw_after_images_per_s']:.1f} "
              f"after; ratio {b['ratio_to_raw']:.2f}")  # fmt: skip
    b = report["burst"]
    print(f"  median ratio to raw batched forward: {report['ratio_to_raw']:.2f}")
    if "unbatched_burst" in report:
        u = report["unbatched_burst"]
        print(f"unbatched (1 per forward pass): {u['images_per_s']:.1f} images/s; batched is "
              f"{report['batched_vs_unbatched']:.2f}x that")  # fmt: skip
    latency = report["idle_latency"]["upload_to_scored"]
    print(f"idle upload-to-scored: p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms")
    print(f"share of the burst's wall time the worker spent in the model (decode + forward): "
          f"{b['model_share_of_wall_time']:.2f}")  # fmt: skip
    print(f"worker RSS with the model loaded: {report['worker_rss_mib']} MiB")


if __name__ == "__main__":
    sys.exit(main())
