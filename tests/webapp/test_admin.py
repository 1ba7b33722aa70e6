import pytest
from django.contrib import admin
from django.urls import reverse

from tests.webapp.conftest import login
from tests.webapp.factories import ReviewFactory
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
