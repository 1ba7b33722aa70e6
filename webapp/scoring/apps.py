from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "webapp.scoring"
    label = "scoring"
    verbose_name = "Scoring"

    def ready(self) -> None:
        from webapp.scoring import worker  # noqa: F401  (connects the worker hooks)
