from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    """A person who signs in; what they may see and do follows from their role."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CLINICIAN)

    def __str__(self) -> str:
        return self.username
