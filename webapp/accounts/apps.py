from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "webapp.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # signals records sign-ins in the history; schema registers the Bearer scheme with
        # drf-spectacular (imported any earlier, with DRF's settings, it would import DRF's
        # views while they are still being defined).
        from webapp.accounts import schema, signals  # noqa: F401
