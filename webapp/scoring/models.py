from __future__ import annotations

from pathlib import PurePosixPath

from django.db import models

from inference.gate import GateReason

# Stored as the inference package names them; shown as its sentences.
GATE_REASONS = [(reason.value, reason.message) for reason in GateReason]
GATE_MESSAGES = dict(GATE_REASONS)


class PredictionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def heatmap_upload_to(prediction: Prediction, filename: str) -> str:
    """Beside the image's own file, named after it and after the score it explains."""
    image_name = PurePosixPath(prediction.image.file.name or "")
    return str(image_name.with_name(f"{image_name.stem}-heatmap-{prediction.pk}.png"))


class Prediction(models.Model):
    """The model's score for one image. The rows are the scoring queue; status is its state.

    pending -> running (claimed by one worker) -> done | failed; a failed attempt that will be
    retried goes back to pending. Only services in webapp.scoring.services move it.
    """

    image = models.ForeignKey("cases.Image", on_delete=models.PROTECT, related_name="predictions")
    status = models.CharField(
        max_length=16, choices=PredictionStatus.choices, default=PredictionStatus.PENDING
    )
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.CharField(max_length=100, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    probability = models.FloatField(
        null=True, blank=True, help_text="Calibrated probability that the lesion is malignant."
    )
    high_risk = models.BooleanField(null=True, blank=True)
    label = models.CharField(max_length=32, blank=True)
    # An image the input gate turned away has this instead of a risk: high_risk is false, and
    # the probability is kept only to be shown on request.
    gate_reason = models.CharField(
        max_length=32,
        choices=GATE_REASONS,
        blank=True,
        help_text="Why the model cannot judge the image; blank when it can.",
    )
    heatmap = models.FileField(
        upload_to=heatmap_upload_to,
        max_length=255,
        blank=True,
        help_text="An overlay PNG of what drove the score, stretched to the image's shape.",
    )
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    inference_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # Finds the predictions due for scoring (webapp.scoring.services.predictions_claim).
            models.Index(fields=["status", "created_at"], name="prediction_status_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                name="prediction_done_has_result",
                condition=~models.Q(status="done")
                | (
                    models.Q(probability__isnull=False)
                    & models.Q(high_risk__isnull=False)
                    & models.Q(threshold__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="prediction_gated_is_not_high_risk",
                condition=models.Q(gate_reason="") | models.Q(high_risk=False),
            ),
            models.CheckConstraint(
                name="prediction_probability_in_unit_range",
                condition=models.Q(probability__isnull=True)
                | (models.Q(probability__gte=0) & models.Q(probability__lte=1)),
            ),
        ]

    def __str__(self) -> str:
        return f"Prediction {self.pk} ({self.status})"

    @property
    def in_progress(self) -> bool:
        return self.status in (PredictionStatus.PENDING, PredictionStatus.RUNNING)

    @property
    def needs_better_image(self) -> bool:
        """Whether the score is done and the input gate turned the image away."""
        return self.status == PredictionStatus.DONE and bool(self.gate_reason)
