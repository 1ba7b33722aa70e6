import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand

from webapp.accounts.models import Role
from webapp.accounts.services import user_set_demo_account

DEMO_ACCOUNTS = (
    ("demo-clinician", Role.CLINICIAN),
    ("demo-reviewer", Role.REVIEWER),
    ("demo-admin", Role.ADMIN),
)


class Command(BaseCommand):
    help = "Create (or reset) a demo clinician, reviewer and admin and print their credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        # A fixed password would be guessable on any machine that runs the demo; a fresh one
        # each run is printed here and nowhere else, unless the operator pins one.
        password = os.environ.get("DERMATRIAGE_DEMO_PASSWORD") or secrets.token_urlsafe(12)
        self.stdout.write("Demo accounts (for local use only):")
        for username, role in DEMO_ACCOUNTS:
            user_set_demo_account(username=username, password=password, role=role)
            self.stdout.write(f"  {role.label:<9}  username: {username:<15} password: {password}")
