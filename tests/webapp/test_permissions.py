"""Every role against every page and endpoint: allowed, 403, or 404 — never another's data."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.webapp.conftest import api_client, login
from tests.webapp.factories import CaseFactory, ClinicianFactory, PredictionFactory
from webapp.cases.services import case_queue_refresh

ROLES = ("anonymous", "clinician", "other_clinician", "reviewer", "admin")


@pytest.fixture
def world(clinician, other_clinician, reviewer, admin_user):
    """One flagged case owned by `clinician`, and a user of every role."""
    case = CaseFactory.create(created_by=clinician)
    prediction = PredictionFactory.create(image__case=case, flagged=True, with_heatmap=True)
    case_queue_refresh(case_id=case.pk)
    users = {
        "anonymous": None,
        "clinician": clinician,
        "other_clinician": other_clinician,
        "reviewer": reviewer,
        "admin": admin_user,
    }
    return {"case": case, "prediction": prediction, "image": prediction.image, "users": users}


# (name, url builder, {role: expected status}); "login" means a redirect to the login page.
PAGES = [
    (
        "home",
        lambda w: reverse("home"),
        {"clinician": 302, "other_clinician": 302, "reviewer": 302, "admin": 302},
    ),
    (
        "case list",
        lambda w: reverse("cases:list"),
        {"clinician": 200, "other_clinician": 200, "reviewer": 200, "admin": 200},
    ),
    (
        "new case",
        lambda w: reverse("cases:create"),
        {"clinician": 200, "other_clinician": 200, "reviewer": 403, "admin": 200},
    ),
    (
        "case detail",
        lambda w: reverse("cases:detail", args=[w["case"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "case timeline",
        lambda w: reverse("cases:timeline", args=[w["case"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "image file",
        lambda w: reverse("cases:image-file", args=[w["case"].pk, w["image"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "heatmap file",
        lambda w: reverse("cases:heatmap-file", args=[w["case"].pk, w["prediction"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "queue",
        lambda w: reverse("reviews:queue"),
        {"clinician": 403, "other_clinician": 403, "reviewer": 200, "admin": 200},
    ),
    (
        "password change",
        lambda w: reverse("password_change"),
        {"clinician": 200, "other_clinician": 200, "reviewer": 200, "admin": 200},
    ),
    (
        "django admin",
        lambda w: reverse("admin:index"),
        {"clinician": 302, "other_clinician": 302, "reviewer": 302, "admin": 200},
    ),
    (
        "api docs",
        lambda w: reverse("api-docs"),
        {"anonymous": 200, "clinician": 200, "other_clinician": 200, "reviewer": 200, "admin": 200},
    ),
    (
        "api schema",
        lambda w: reverse("api-schema"),
        {"anonymous": 200, "clinician": 200, "other_clinician": 200, "reviewer": 200, "admin": 200},
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "url", "expected"), PAGES, ids=[page[0] for page in PAGES])
def test_each_role_gets_the_pages_its_role_allows(world, role, name, url, expected):
    user = world["users"][role]
    client = login(user) if user else Client()
    response = client.get(url(world))
    if user is None and "anonymous" not in expected:
        # Pages redirect to the login form.
        assert response.status_code in (302, 401, 403), name
        if response.status_code == 302:
            assert "/login/" in response["Location"]
        return
    assert response.status_code == expected[role], f"{role} on {name}"


def test_a_clinician_only_lists_their_own_cases(world):
    CaseFactory.create(created_by=world["users"]["other_clinician"], subject_ref="SOMEONE-ELSE")
    response = login(world["users"]["clinician"]).get(reverse("cases:list"))
    assert world["case"].subject_ref in response.text
    assert "SOMEONE-ELSE" not in response.text


POSTS = [
    (
        "upload",
        lambda w: reverse("cases:upload", args=[w["case"].pk]),
        # An empty upload is refused with the page and its message; strangers get 404.
        {"clinician": 400, "other_clinician": 404, "reviewer": 403, "admin": 400},
    ),
    (
        "review",
        lambda w: reverse("cases:review", args=[w["case"].pk]),
        # An empty review form is refused with the case page and its message.
        {"clinician": 403, "other_clinician": 403, "reviewer": 400, "admin": 400},
    ),
]


@pytest.mark.parametrize("role", ROLES[1:])
@pytest.mark.parametrize(("name", "url", "expected"), POSTS, ids=[post[0] for post in POSTS])
def test_each_role_may_only_post_what_its_role_allows(world, role, name, url, expected):
    response = login(world["users"][role]).post(url(world), {})
    assert response.status_code == expected[role], f"{role} posting {name}"


API = [
    (
        "GET",
        "case list",
        lambda w: reverse("api:case-list"),
        {"clinician": 200, "other_clinician": 200, "reviewer": 200, "admin": 200},
    ),
    (
        "POST",
        "case create",
        lambda w: reverse("api:case-list"),
        {"clinician": 400, "other_clinician": 400, "reviewer": 403, "admin": 400},
    ),
    (
        "GET",
        "case detail",
        lambda w: reverse("api:case-detail", args=[w["case"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "GET",
        "case images",
        lambda w: reverse("api:case-images", args=[w["case"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "GET",
        "image file",
        lambda w: reverse("api:image-file", args=[w["case"].pk, w["image"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "GET",
        "heatmap file",
        lambda w: reverse("api:prediction-heatmap", args=[w["prediction"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "POST",
        "image upload",
        lambda w: reverse("api:case-images", args=[w["case"].pk]),
        {"clinician": 400, "other_clinician": 404, "reviewer": 403, "admin": 400},
    ),
    (
        "GET",
        "prediction",
        lambda w: reverse("api:prediction-detail", args=[w["prediction"].pk]),
        {"clinician": 200, "other_clinician": 404, "reviewer": 200, "admin": 200},
    ),
    (
        "GET",
        "queue",
        lambda w: reverse("api:queue"),
        {"clinician": 403, "other_clinician": 403, "reviewer": 200, "admin": 200},
    ),
    (
        "GET",
        "review list",
        lambda w: reverse("api:review-list"),
        {"clinician": 200, "other_clinician": 200, "reviewer": 200, "admin": 200},
    ),
    (
        "POST",
        "review create",
        lambda w: reverse("api:review-list"),
        {"clinician": 403, "other_clinician": 403, "reviewer": 400, "admin": 400},
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "name", "url", "expected"), API, ids=[f"{a[0]} {a[1]}" for a in API]
)
def test_each_role_gets_the_endpoints_its_role_allows(world, role, method, name, url, expected):
    client = api_client(world["users"][role])
    response = (
        client.generic(method, url(world), format="multipart")
        if method == "POST"
        else client.get(url(world))
    )
    if role == "anonymous":
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "not_authenticated"
        return
    assert response.status_code == expected[role], f"{role} {method} {name}"
    if response.status_code in (403, 404):
        body = response.json()
        assert set(body) == {"error"}
        assert world["case"].subject_ref not in response.text


def test_a_clinician_sees_only_reviews_of_their_own_cases(world, reviewer):
    from webapp.reviews.models import Decision
    from webapp.reviews.services import review_create

    review_create(
        case=world["case"],
        prediction=world["prediction"],
        reviewer=reviewer,
        decision=Decision.AGREE,
    )
    owner = api_client(world["users"]["clinician"]).get(reverse("api:review-list")).json()
    stranger = api_client(ClinicianFactory.create()).get(reverse("api:review-list")).json()
    assert owner["count"] == 1
    assert stranger["count"] == 0


# Guessing ids: clinician B walks every id around A's objects and reaches none of them. The
# answer for "exists but not yours" must be the one for "does not exist", or it leaks.


@pytest.fixture
def two_clinicians(clinician, other_clinician):
    """A's case with an image, score and review; B's own case; ids of both kinds mixed."""
    from tests.webapp.factories import ReviewFactory

    a_case = CaseFactory.create(created_by=clinician)
    a_prediction = PredictionFactory.create(image__case=a_case, flagged=True, with_heatmap=True)
    a_review = ReviewFactory.create(prediction=a_prediction)
    b_case = CaseFactory.create(created_by=other_clinician)
    b_prediction = PredictionFactory.create(image__case=b_case, done=True, with_heatmap=True)
    return {
        "a": clinician,
        "b": other_clinician,
        "a_case": a_case,
        "a_image": a_prediction.image,
        "a_prediction": a_prediction,
        "a_review": a_review,
        "b_case": b_case,
        "b_image": b_prediction.image,
        "b_prediction": b_prediction,
    }


def _ids_around(*objects) -> range:
    top = max(obj.pk for obj in objects)
    return range(1, top + 4)


def test_guessing_case_ids_reaches_no_other_clinicians_case(two_clinicians):
    w = two_clinicians
    page, api = login(w["b"]), api_client(w["b"])
    for case_id in _ids_around(w["a_case"], w["b_case"]):
        own = case_id == w["b_case"].pk
        expected = 200 if own else 404
        assert page.get(reverse("cases:detail", args=[case_id])).status_code == expected
        assert page.get(reverse("cases:timeline", args=[case_id])).status_code == expected
        assert api.get(reverse("api:case-detail", args=[case_id])).status_code == expected
        assert api.get(reverse("api:case-images", args=[case_id])).status_code == expected
        if not own:
            upload = api.post(reverse("api:case-images", args=[case_id]), {}, format="multipart")
            assert upload.status_code == 404
            form = page.post(reverse("cases:upload", args=[case_id]), {})
            assert form.status_code == 404


def test_guessing_image_ids_reaches_no_other_clinicians_image(two_clinicians):
    w = two_clinicians
    page = login(w["b"])
    case_ids = [w["a_case"].pk, w["b_case"].pk]
    for case_id in case_ids:
        for image_id in _ids_around(w["a_image"], w["b_image"]):
            own = case_id == w["b_case"].pk and image_id == w["b_image"].pk
            response = page.get(reverse("cases:image-file", args=[case_id, image_id]))
            assert response.status_code == (200 if own else 404), (case_id, image_id)


def test_guessing_prediction_ids_reaches_no_other_clinicians_score(two_clinicians):
    w = two_clinicians
    api = api_client(w["b"])
    for prediction_id in _ids_around(w["a_prediction"], w["b_prediction"]):
        own = prediction_id == w["b_prediction"].pk
        response = api.get(reverse("api:prediction-detail", args=[prediction_id]))
        assert response.status_code == (200 if own else 404)


def test_guessing_heatmap_ids_reaches_no_other_clinicians_heatmap(two_clinicians):
    w = two_clinicians
    page, api = login(w["b"]), api_client(w["b"])
    for prediction_id in _ids_around(w["a_prediction"], w["b_prediction"]):
        own = prediction_id == w["b_prediction"].pk
        answer = api.get(reverse("api:prediction-heatmap", args=[prediction_id]))
        assert answer.status_code == (200 if own else 404), prediction_id
        for case_id in (w["a_case"].pk, w["b_case"].pk):
            mine = own and case_id == w["b_case"].pk
            response = page.get(reverse("cases:heatmap-file", args=[case_id, prediction_id]))
            assert response.status_code == (200 if mine else 404), (case_id, prediction_id)


def test_guessing_case_ids_in_review_filters_reveals_no_reviews(two_clinicians):
    w = two_clinicians
    api = api_client(w["b"])
    for case_id in _ids_around(w["a_case"], w["b_case"]):
        body = api.get(reverse("api:review-list"), {"case": case_id}).json()
        assert body["count"] == 0
    assert api_client(w["a"]).get(reverse("api:review-list")).json()["count"] == 1


def test_another_clinicians_object_answers_exactly_like_a_missing_one(two_clinicians):
    w = two_clinicians
    api = api_client(w["b"])
    missing = 10_000_000
    pairs = [
        ("api:case-detail", w["a_case"].pk),
        ("api:case-images", w["a_case"].pk),
        ("api:prediction-detail", w["a_prediction"].pk),
        ("api:prediction-heatmap", w["a_prediction"].pk),
    ]
    for name, object_id in pairs:
        theirs = api.get(reverse(name, args=[object_id]))
        nothing = api.get(reverse(name, args=[missing]))
        assert (theirs.status_code, theirs.json()) == (nothing.status_code, nothing.json())


def test_a_reviewer_cannot_review_a_score_through_another_case(two_clinicians, reviewer):
    w = two_clinicians
    response = api_client(reviewer).post(
        reverse("api:review-list"),
        {"case": w["b_case"].pk, "prediction": w["a_prediction"].pk, "decision": "agree"},
        format="json",
    )
    assert response.status_code == 400
    assert "another case" in str(response.json()["error"]["details"])


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_the_health_and_token_endpoints(world, role):
    user = world["users"][role]
    client = api_client(user)
    health = Client().get(reverse("health"))
    assert health.status_code in (200, 503)  # public, and no data about anyone
    assert world["case"].subject_ref not in health.text
    bad_login = client.post(reverse("api:token"), {"username": "nobody", "password": "x"})
    assert bad_login.status_code == 400
    revoke = client.delete(reverse("api:token"))
    assert revoke.status_code == (401 if user is None else 204)


ADMIN_MODELS = [
    "accounts_user",
    "audit_auditevent",
    "cases_case",
    "cases_image",
    "scoring_prediction",
    "reviews_review",
]


@pytest.mark.parametrize("role", ["clinician", "other_clinician", "reviewer"])
@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_only_admins_reach_the_admin_pages_of_any_model(world, role, model):
    response = login(world["users"][role]).get(reverse(f"admin:{model}_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert (
        login(world["users"]["admin"]).get(reverse(f"admin:{model}_changelist")).status_code == 200
    )
