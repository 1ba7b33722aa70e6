"""The DermaTriage web app: one Django app per domain, in layers.

An app imports only the apps listed before it in LAYERS, at the top of a module or inside a
function alike, so no two apps import each other; no app imports another's views (what pages
share lives in a module that is not a view); and `lib` imports nothing of this project.
tests/webapp/test_layers.py checks all three. A relation a higher app declares to a lower one's
model (a score to its image) is named by string, as Django's foreign keys allow; the lower app
reads it, where it must, by that name too (cases.services.case_queue_refresh_many).

Each app writes only its own models and asks the others' services for anything else; the one
exception is `casework.seed`, which fills a database for load tests in bulk.

`webapp.config` (settings, URLs, the Celery app, and the answers to refused requests, which it
records against the case they concern) is the project around the apps: it may import any of
them.
"""

LAYERS = (
    # Django and DRF plumbing: the API's error format, pagination, htmx, middleware.
    "lib",
    # Whether this deployment can serve: database, broker, model artifact, workers.
    "health",
    # The append-only history every app above records into.
    "audit",
    # Users, roles, API tokens and signing in.
    "accounts",
    # Cases and their images, and each case's place in the review queue.
    "cases",
    # The model's score of each image; it keeps the queue up to date through cases.services.
    "scoring",
    # Reviewers' decisions and the queue they work through.
    "reviews",
    # A whole case as people work on it: its pages and API (images, scores, reviews, history),
    # uploads that start scoring, and demo data.
    "casework",
)
