from django.apps import AppConfig


class CaseworkConfig(AppConfig):
    name = "webapp.casework"
    label = "casework"
    verbose_name = "Casework"
