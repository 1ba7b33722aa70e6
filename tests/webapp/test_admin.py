from io import StringIO

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import PASSWORD, ReviewFactory, SuperuserFactory
from webapp.accounts.models import Role, User
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record

APPS = {"accounts", "audit", "cases", "scoring", "reviews"}
MODELS = sorted(
    (model._meta.app_label, model._meta.model_name)
    for model in admin.site._registry
    if model._meta.app_label in APPS
)


def test_every_model_of_the_app_has_an_admin():
    assert {label for label, _ in MODELS} == APPS
    assert len(MODELS) == 6


@pytest.mark.parametrize(("app_label", "model_name"), MODELS)
def test_an_admin_can_list_and_open_each_model(admin_user, app_label, model_name):
    review = ReviewFactory.create()
    audit_record(action=AuditAction.CASE_VIEWED, actor=admin_user, case=review.case)
    client = login(admin_user)
    changelist = client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
    assert changelist.status_code == 200
    model = next(m for m in admin.site._registry if m._meta.model_name == model_name)
    obj = model._default_manager.first()
    assert obj is not None
    detail = client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk]))
    assert detail.status_code == 200


def test_the_demo_admin_can_administer(db, monkeypatch):
    monkeypatch.setenv("DERMATRIAGE_DEMO_PASSWORD", "demo-password-for-tests")
    call_command("demo_users", stdout=StringIO())
    client = Client()
    assert client.login(username="demo-admin", password="demo-password-for-tests")
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert "permission to view or edit anything" not in index.content.decode()
    assert reverse("admin:accounts_user_changelist") in index.content.decode()
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_user_add")).status_code == 200


def test_an_admin_adds_a_user_with_a_role_through_the_admin_pages(admin_user):
    response = login(admin_user).post(
        reverse("admin:accounts_user_add"),
        {
            "username": "new-reviewer",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "role": Role.REVIEWER,
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content.decode()
    user = User.objects.get(username="new-reviewer")
    assert (user.role, user.is_staff, user.is_superuser) == (Role.REVIEWER, False, False)
    assert user.check_password(PASSWORD)


def _change_form(user: User, **changes: object) -> dict[str, object]:
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": user.role,
        "is_active": "on" if user.is_active else "",
        "_save": "Save",
        **changes,
    }


def test_an_admin_changes_a_role_and_admin_access_follows_it(admin_user, clinician):
    client = login(admin_user)
    url = reverse("admin:accounts_user_change", args=[clinician.pk])
    promoted = client.post(url, _change_form(clinician, role=Role.ADMIN))
    assert promoted.status_code == 302, promoted.content.decode()
    clinician.refresh_from_db()
    assert (clinician.role, clinician.is_staff) == (Role.ADMIN, True)
    assert login(clinician).get(reverse("admin:accounts_user_changelist")).status_code == 200

    demoted = client.post(url, _change_form(clinician, role=Role.REVIEWER))
    assert demoted.status_code == 302
    clinician.refresh_from_db()
    assert (clinician.role, clinician.is_staff) == (Role.REVIEWER, False)
    assert login(clinician).get(reverse("admin:index")).status_code == 302


def test_an_admin_cannot_make_anyone_a_superuser_or_change_a_superuser(admin_user, clinician):
    client = login(admin_user)
    url = reverse("admin:accounts_user_change", args=[clinician.pk])
    client.post(url, _change_form(clinician, is_superuser="on", is_staff="on"))
    clinician.refresh_from_db()
    assert (clinician.is_superuser, clinician.is_staff) == (False, False)

    superuser = SuperuserFactory.create()
    password_page = reverse("admin:auth_user_password_change", args=[superuser.pk])
    assert client.get(password_page).status_code == 403
    client.post(reverse("admin:accounts_user_change", args=[superuser.pk]), _change_form(superuser))
    superuser.refresh_from_db()
    assert superuser.is_superuser


def test_an_admin_reads_but_does_not_edit_cases_scores_and_reviews(admin_user):
    review = ReviewFactory.create()
    client = login(admin_user)
    page = client.get(reverse("admin:cases_case_change", args=[review.case.pk]))
    assert page.status_code == 200
    assert 'name="subject_ref"' not in page.content.decode()
    assert client.get(reverse("admin:cases_case_add")).status_code == 403
    assert (
        client.get(reverse("admin:accounts_user_delete", args=[admin_user.pk])).status_code == 403
    )
