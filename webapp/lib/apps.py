from django.apps import AppConfig


class LibConfig(AppConfig):
    name = "webapp.lib"
    label = "lib"
    verbose_name = "Shared code"
