"""End-to-end scoring throughput and latency through Redis and Celery, against the raw model.

Run from the repository root, with PostgreSQL and Redis up (DATABASE_URL, CELERY_BROKER_URL):

    .venv/bin/python -m benchmarks.throughput [--images 500] [--batch-size 16] [--json PATH]

In a scratch database and a queue of its own, with one solo-pool Celery worker, it measures the
served model's raw batched forward in this process (the baseline; beside it batch 1, decoding
included, and a heatmap overlay drawn per image as the worker does); --bursts bursts of
--images uploads queued through `case_images_upload` while the worker is held, then released,
each against the raw forward measured right before and right after it; a burst scored one
image per forward pass; upload-to-scored latency on an idle queue; and the worker's memory.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.report import throughput_figures
from benchmarks.support import (
    REPO_ROOT,
    arguments,
    finish,
    images_per_s,
    lesion_jpegs,
    machine,
    rss_mib,
    scratch_django,
    stop_process,
    summary_ms,
    wait_until,
)

UPLOADS_PER_TRANSACTION = 25


class Worker(NamedTuple):
    name: str
    process: subprocess.Popen[bytes]


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "benchmarks.throughput")
    parser.add_argument("--images", type=int, default=500, help="uploads in each burst")
    parser.add_argument("--bursts", type=int, default=3, help="bursts, each between baselines")
    parser.add_argument("--batch-size", type=int, default=16, help="DERMATRIAGE_SCORING_BATCH_SIZE")
    parser.add_argument(
        "--unbatched-images", type=int, default=200, help="burst scored one per pass (0: skip)"
    )
    parser.add_argument("--idle-samples", type=int, default=30, help="idle-queue uploads timed")
    args = parser.parse_args(argv)
    if min(args.images, args.batch_size, args.bursts, args.idle_samples) < 1:
        parser.error("--images, --batch-size, --bursts and --idle-samples must be positive")

    report: dict[str, Any] = {"machine": machine(), "batch_size": args.batch_size}
    with scratch_django("throughput") as (env, folder):
        images, report["image_source"] = lesion_jpegs(64)
        raw = RawForward(images, batch_size=args.batch_size)
        report["raw"] = raw.measure()
        uploader = Uploader(images)
        with worker(env, batch_size=args.batch_size, log_dir=folder) as w:
            uploader.wait_scored(uploader.upload(1), timeout=300)  # loads the model
            report["bursts"] = [
                measured_burst(w, uploader, raw, count=args.images) for _ in range(args.bursts)
            ]
            report["idle_latency"] = idle_latency(uploader, samples=args.idle_samples)
            report["worker_rss_mib"] = rss_mib(w.process.pid)
        if args.unbatched_images:
            with worker(env, batch_size=1, log_dir=folder) as w:
                uploader.wait_scored(uploader.upload(1), timeout=300)
                report["unbatched_burst"] = burst(w, uploader, count=args.unbatched_images)
        from webapp.config.celery import app

        app.control.purge()  # what is left of this run's queue: consumed wake-ups only
    summarise(report)
    finish(report, throughput_figures, args.json)
    return 0


def measured_burst(w: Worker, uploader: Uploader, raw: RawForward, *, count: int) -> dict[str, Any]:
    """One burst between two measurements of the raw forward, and its ratio to their mean.

    The raw forward's speed drifts on a shared machine between runs minutes apart, so every
    burst gets a baseline of its own, taken right before and right after it.
    """
    before = raw.forward()
    result = burst(w, uploader, count=count)
    # Measured once the worker has also consumed the wake-ups left behind the drain (one per
    # upload request): they would compete for the cores.
    wait_queue_consumed()
    after = raw.forward()
    baseline = (before + after) / 2
    return {
        **result,
        "raw_before_images_per_s": before,
        "raw_after_images_per_s": after,
        "baseline_images_per_s": round(baseline, 2),
        "ratio_to_raw": round(result["images_per_s"] / baseline, 3),
    }


def wait_queue_consumed(timeout: float = 300) -> None:
    """Wait until the run's queue holds no message."""
    from amqp.exceptions import ChannelError
    from django.conf import settings

    from webapp.config.celery import app

    def consumed() -> bool:
        with app.connection_for_read() as connection:
            channel: Any = connection.default_channel
            try:
                declared = channel.queue_declare(settings.CELERY_TASK_DEFAULT_QUEUE, passive=True)
            except ChannelError:
                return True  # Redis drops an emptied list: no queue, no messages
            return int(declared.message_count) == 0

    wait_until(consumed, timeout=timeout, what="the worker to consume the queue", interval=0.2)
    time.sleep(1.0)  # the deliveries the worker had already reserved


class RawForward:
    """The served model in this process, timed on batches of preprocessed images."""

    def __init__(self, images: list[bytes], *, batch_size: int) -> None:
        import PIL.Image

        from inference import load_classifier

        self.classifier = load_classifier(path=None)
        self.batch_size = batch_size
        self.batch = [images[i % len(images)] for i in range(batch_size)]
        self.pixels = self.classifier.preprocess(self.batch)
        self.sizes = [PIL.Image.open(io.BytesIO(data)).size for data in self.batch]

    def forward(self) -> float:
        return images_per_s(
            lambda: self.classifier.predict_pixels(self.pixels), self.batch_size, budget_s=4.0
        )

    def draw_heatmaps(self, results: list[Any]) -> None:
        from inference.explain import overlay_png

        for result, (width, height) in zip(results, self.sizes, strict=True):
            if result.heatmap is not None:
                overlay_png(result.heatmap, width=width, height=height)

    def measure(self) -> dict[str, Any]:
        """The baseline and its neighbours: batch 1, with JPEG decoding included, and with a
        heatmap overlay drawn per image as the worker does; and the overlay alone."""
        classifier, size = self.classifier, self.batch_size
        results = classifier.predict_pixels(self.pixels)
        return {
            "backend": classifier.backend,
            # The worker loads the same way, so this is where the bursts were scored too.
            "device": classifier.device,
            "model_version": classifier.version,
            "forward_images_per_s": self.forward(),
            "forward_batch_1_images_per_s": images_per_s(
                lambda: classifier.predict_pixels(self.pixels[:1]), 1
            ),
            "decode_and_forward_images_per_s": images_per_s(
                lambda: classifier.predict(self.batch), size
            ),
            "forward_and_heatmaps_images_per_s": images_per_s(
                lambda: self.draw_heatmaps(classifier.predict_pixels(self.pixels)), size
            ),
            "heatmap_ms_per_image": round(
                1000 / images_per_s(lambda: self.draw_heatmaps(results), size, budget_s=2.0), 2
            ),
        }


class Uploader:
    """Stores uploads through the case service, as the web app would, and waits for scores."""

    def __init__(self, images: list[bytes]) -> None:
        from webapp.accounts.models import Role, User

        self.images = images
        self.sent = 0
        self.user = User.objects.create(username="bench-clinician", role=Role.CLINICIAN)

    def upload(self, count: int) -> list[int]:
        """Upload `count` images, several per request as a clinician's batch would be."""
        from django.core.files.uploadedfile import SimpleUploadedFile

        from webapp.cases.models import BodySite
        from webapp.cases.services import case_create
        from webapp.casework.services import case_images_upload
        from webapp.scoring.models import Prediction

        image_ids: list[int] = []
        while len(image_ids) < count:
            files = []
            for _ in range(min(UPLOADS_PER_TRANSACTION, count - len(image_ids))):
                data = self.images[self.sent % len(self.images)]
                files.append(SimpleUploadedFile(f"lesion-{self.sent}.jpg", data, "image/jpeg"))
                self.sent += 1
            # A case per request: one case collecting every upload would make each queue
            # refresh scan them all.
            case = case_create(
                created_by=self.user,
                subject_ref=f"BENCH-{self.sent}",
                body_site=BodySite.TRUNK_POSTERIOR,
            )
            stored = case_images_upload(case=case, files=files, uploaded_by=self.user)
            image_ids += [image.pk for image in stored.images]
        return list(Prediction.objects.filter(image_id__in=image_ids).values_list("pk", flat=True))

    def wait_scored(self, ids: list[int], *, timeout: float, interval: float = 0.1) -> None:
        from webapp.scoring.models import Prediction, PredictionStatus

        # By id range, not an IN list of every id: this poll runs beside the worker being
        # measured and should cost it as little CPU as possible.
        finished = Prediction.objects.filter(
            pk__gte=min(ids),
            pk__lte=max(ids),
            status__in=(PredictionStatus.DONE, PredictionStatus.FAILED),
        )
        wait_until(
            lambda: finished.count() == len(ids),
            timeout=timeout,
            what=f"{len(ids)} predictions to be scored",
            interval=interval,
        )


@contextmanager
def worker(env: dict[str, str], *, batch_size: int, log_dir: Path) -> Iterator[Worker]:
    """A solo-pool Celery worker on the benchmark's queue, ready to consume."""
    from webapp.config.celery import app

    name = f"bench-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    log_path = log_dir / f"{name.split('@')[0]}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "webapp.config", "worker", "--pool=solo",
        "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
        f"--hostname={name}", f"--queues={env['CELERY_TASK_DEFAULT_QUEUE']}",
    ]  # fmt: skip
    worker_env = {**os.environ, **env, "DERMATRIAGE_SCORING_BATCH_SIZE": str(batch_size)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            command, cwd=REPO_ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while not app.control.ping(destination=[name], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {name} did not start:\n{log_path.read_text()[-3000:]}")
        yield Worker(name, process)
    finally:
        stop_process(process)


@contextmanager
def held(w: Worker) -> Iterator[None]:
    """Keep the worker from consuming until the block ends, so that a burst queues up first."""
    from django.conf import settings

    from webapp.config.celery import app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    if not app.control.cancel_consumer(queue, destination=[w.name], reply=True):
        raise SystemExit(f"worker {w.name} did not answer the hold")
    try:
        yield
    finally:
        app.control.add_consumer(queue, destination=[w.name], reply=True)


def burst(w: Worker, uploader: Uploader, *, count: int) -> dict[str, Any]:
    """Queue `count` uploads while the worker is held, release it, time until all are done."""
    from django.db.models import Max, Sum

    from webapp.scoring.models import Prediction, PredictionStatus

    print(f"burst of {count} uploads ...", flush=True)
    with held(w):
        prediction_ids = uploader.upload(count)
        released = time.time()
    # Timed from the rows' own finish times, so that a slow poll loses no accuracy.
    uploader.wait_scored(prediction_ids, timeout=max(600.0, count * 2.0), interval=1.0)
    rows = Prediction.objects.filter(pk__in=prediction_ids)
    span = rows.aggregate(last=Max("finished_at"), model_ms=Sum("inference_ms"))
    seconds = span["last"].timestamp() - released
    # Each row carries its share of its batch's predict call (decode + forward), so the sum is
    # the time the worker spent in the model, under the very load the burst ran in.
    model_seconds = (span["model_ms"] or 0) / 1000
    batches = rows.values("started_at").distinct().count()
    return {
        "images": count,
        "failed": count - rows.filter(status=PredictionStatus.DONE).count(),
        "seconds": round(seconds, 2),
        "images_per_s": round(count / seconds, 2),
        "batches": batches,
        "mean_batch": round(count / batches, 1),
        "model_share_of_wall_time": round(model_seconds / seconds, 3),
    }


def idle_latency(uploader: Uploader, *, samples: int) -> dict[str, Any]:
    """Upload one image at a time on an idle queue; time until its score is on the row."""
    from webapp.scoring.models import Prediction

    observed: list[float] = []
    on_row: list[float] = []
    for _ in range(samples):
        time.sleep(0.2)  # let the worker go idle
        started = time.perf_counter()
        ids = uploader.upload(1)
        uploader.wait_scored(ids, timeout=60, interval=0.002)
        observed.append(time.perf_counter() - started)
        row = Prediction.objects.get(pk=ids[0])
        if row.finished_at is not None:
            on_row.append((row.finished_at - row.created_at).total_seconds())
    return {"upload_to_scored": summary_ms(observed), "row_created_to_finished": summary_ms(on_row)}


def summarise(report: dict[str, Any]) -> None:
    """The median burst by ratio stands for the run (the upper median for an even count)."""
    ranked = sorted(report["bursts"], key=lambda b: b["ratio_to_raw"])
    median = report["burst"] = ranked[len(ranked) // 2]
    report["ratio_to_raw"] = median["ratio_to_raw"]
    if "unbatched_burst" in report:
        unbatched = report["unbatched_burst"]["images_per_s"]
        report["batched_vs_unbatched"] = round(median["images_per_s"] / unbatched, 2)


if __name__ == "__main__":
    sys.exit(main())
