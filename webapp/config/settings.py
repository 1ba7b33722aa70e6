"""Django settings for DermaTriage, read from the environment (see .env.example)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

# Imported as a setting too (settings.DISCLAIMER): lib's templates, serializers and error pages
# read the project's one disclaimer from here, since lib imports nothing of the project.
from inference.disclaimer import DISCLAIMER
from webapp.config.env import env_bool, env_int, env_list, env_optional_str, env_str

# Lets Django classes written as generics for the type checker (ModelAdmin[Case]) run too.
# DRF is deliberately not imported here: its class attributes read REST_FRAMEWORK on import.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Everything the app writes when nothing else is configured lives under var/ (git-ignored).
VAR_DIR = Path(env_str("DERMATRIAGE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", default=False)


ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_filters",
    "django_htmx",
    "csp",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rest_framework",
    "axes",
    "template_partials",
    # In the order of their layers (webapp.LAYERS).
    "webapp.lib",
    "webapp.health",
    "webapp.audit",
    "webapp.accounts",
    "webapp.cases",
    "webapp.scoring",
    "webapp.reviews",
    "webapp.casework",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "webapp.lib.middleware.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Every page needs a signed-in user; the few public ones opt out with @login_not_required
    # and the REST API authenticates (token or session) on its own.
    "webapp.lib.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: it turns a sign-in refused by the throttle into a 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.config.urls"
WSGI_APPLICATION = "webapp.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.lib.context_processors.disclaimer",
            ],
        },
    },
]

# Databases: PostgreSQL when DATABASE_URL is set, otherwise an embedded SQLite file.
DATABASE_URL = env_optional_str("DATABASE_URL")
USING_EMBEDDED_DATABASE = DATABASE_URL is None
_database: dict[str, Any]
if DATABASE_URL is None:
    _database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / "db.sqlite3"),
        # The web server and the worker share this file. In WAL mode readers never wait for
        # the writer. IMMEDIATE takes the write lock when a transaction opens: a transaction
        # that read first and then wrote could otherwise meet another writer in a deadlock,
        # which SQLite answers at once with "database is locked" instead of waiting. With both,
        # a writer waits its turn for up to the timeout (seconds).
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
    }
else:
    _database = dict(environ.Env.db_url_config(DATABASE_URL))
    _database["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    _database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}

_secret_key = env_optional_str("DJANGO_SECRET_KEY")
if _secret_key is None:
    # A fixed key is only acceptable for local runs on the embedded defaults: sessions signed
    # with it are forgeable by anyone who reads this file.
    if not (DEBUG or USING_EMBEDDED_DATABASE):
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY: it is required once DATABASE_URL is.")
    _secret_key = "insecure-local-only-key-set-DJANGO_SECRET_KEY-in-production"  # noqa: S105
SECRET_KEY = _secret_key
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
# The sign-in throttle first (it refuses, never admits), then Django's own backend plus the
# admin permissions that follow from a user's role.
AUTHENTICATION_BACKENDS = [
    "webapp.accounts.backends.LoginThrottleBackend",
    "webapp.accounts.backends.RoleBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Static files are served by WhiteNoise from STATIC_ROOT (run collectstatic first).
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
WHITENOISE_USE_FINDERS = DEBUG

# Uploaded images: local disk by default, an S3-compatible bucket when one is named. They are
# never served from a public URL; the app streams them after a permission check.
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media")))
AWS_STORAGE_BUCKET_NAME = env_optional_str("AWS_STORAGE_BUCKET_NAME")
_default_storage: dict[str, Any]
if AWS_STORAGE_BUCKET_NAME is None:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_optional_str("AWS_S3_ENDPOINT_URL"),
            "region_name": env_optional_str("AWS_S3_REGION_NAME"),
            "access_key": env_optional_str("AWS_ACCESS_KEY_ID"),
            "secret_key": env_optional_str("AWS_SECRET_ACCESS_KEY"),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("DJANGO_STATIC_MANIFEST", default=False)
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
# Uploads of several full-resolution dermoscopy images exceed Django's 2.5 MB default.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_UPLOAD_MAX_MB", 50, minimum=1) * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DJANGO_UPLOAD_MAX_FILES", 50, minimum=1)
# Per image: a dermoscopy photo is a few MB and at most ~25 megapixels; anything far beyond is
# a mistake or a decompression bomb, refused before its pixels are decoded.
UPLOAD_MAX_IMAGE_BYTES = env_int("DERMATRIAGE_UPLOAD_MAX_IMAGE_MB", 25, minimum=1) * 1024 * 1024
UPLOAD_MAX_IMAGE_PIXELS = env_int("DERMATRIAGE_UPLOAD_MAX_MEGAPIXELS", 50, minimum=1) * 1_000_000
# And the least a lesion image must be to be scored: a 1x1 or 100000x1 image has no lesion in
# it, yet the model would give it a score like any other (and could flag it). 24 px refuses
# dots, lines and icons while staying far below any real photograph.
UPLOAD_MIN_IMAGE_SIDE = 24
UPLOAD_MAX_ASPECT_RATIO = 10
# Per upload request: the images' pixels together, read from their headers before any is
# decoded. Decoding and re-encoding is what holds a web worker, so this bounds how long one
# request can hold it, whatever the per-file limits above allow in number and size.
UPLOAD_MAX_REQUEST_PIXELS = (
    env_int("DERMATRIAGE_UPLOAD_MAX_REQUEST_MEGAPIXELS", 200, minimum=1) * 1_000_000
)

# DJANGO_HTTPS=true (served over HTTPS, the production setting) switches on secure cookies,
# the HTTPS redirect and HSTS, whose policy can still be set on its own. `manage.py check
# --deploy` is clean with it (tests/webapp/test_security.py runs it).
HTTPS = env_bool("DJANGO_HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
# Preloading asks browsers to hard-code HTTPS for the domain and every subdomain, and is slow
# to undo: only when asked for. `check --deploy` warns without it; that warning is silenced.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
if env_bool("DJANGO_BEHIND_HTTPS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# A clinical session ends with the shift: eight hours, and when the browser closes.
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_AGE_SECONDS", 8 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy on every response: scripts, styles, images and requests from this
# site only (htmx, the vendored files, the API docs' sidecar files are all served from it);
# the one inline style left (the API docs page's) carries the request's nonce.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        # Swagger UI's stylesheet draws its icons as data: URIs.
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Sign-in throttle (django-axes, webapp.accounts.lockout), shared by the sign-in page, the
# admin's and the API token endpoint: after this many failures for one username, or the IP
# limit from one address, sign-ins are refused (429) until the window has passed since the
# last failure. An admin can lift a lockout early under "Access attempts" in the admin.
LOGIN_FAILURE_LIMIT = env_int("DERMATRIAGE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_IP_FAILURE_LIMIT = env_int("DERMATRIAGE_LOGIN_IP_FAILURE_LIMIT", 20, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("DERMATRIAGE_LOGIN_FAILURE_WINDOW", 900, minimum=1)
# Read through functions so the three settings above stay the one source.
AXES_FAILURE_LIMIT = "webapp.accounts.lockout.failure_limit"
AXES_COOLOFF_TIME = "webapp.accounts.lockout.cool_off"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HANDLER = "webapp.accounts.lockout.LoginFailureHandler"
AXES_USERNAME_CALLABLE = "webapp.accounts.lockout.login_username"
AXES_CLIENT_IP_CALLABLE = "webapp.accounts.services.client_ip"
AXES_LOCKOUT_CALLABLE = "webapp.accounts.lockout.locked_out_response"
# Successful sign-ins are in the audit history already.
AXES_DISABLE_ACCESS_LOG = True
# API tokens stop working this many days after they are issued (and at once when revoked or
# when their user's password changes).
API_TOKEN_TTL_DAYS = env_int("DERMATRIAGE_API_TOKEN_TTL_DAYS", 30, minimum=1)
# Reverse proxies in front of the app that append to X-Forwarded-For: the client address (for
# the throttle above and the audit history) is that many entries from its right. 0: the peer.
TRUSTED_PROXY_COUNT = env_int("DERMATRIAGE_TRUSTED_PROXY_COUNT", 0, minimum=0)

# /health/ answers anyone with its status alone; staff, a probe that sends this token as
# `Authorization: Bearer <token>`, and a probe from one of these networks that did not come
# through a proxy (the machine itself by default: a container's own healthcheck) also get each
# check's detail and may ask the workers.
HEALTH_TOKEN = env_optional_str("DERMATRIAGE_HEALTH_TOKEN")
try:
    HEALTH_PROBE_NETWORKS = [
        ipaddress.ip_network(network)
        for network in env_list("DERMATRIAGE_HEALTH_PROBE_NETWORKS", ["127.0.0.0/8", "::1/128"])
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"DERMATRIAGE_HEALTH_PROBE_NETWORKS: {exc}") from exc

# Reviewing (webapp.reviews): a reviewer who opens a queued case holds it for this many
# minutes (renewed while the page is opened again, released when the review is saved); the
# queue marks it taken and "next" sends no one else there meanwhile.
REVIEW_CLAIM_MINUTES = env_int("DERMATRIAGE_CLAIM_MINUTES", 15, minimum=1)

# Celery: Redis when CELERY_BROKER_URL is set, otherwise kombu's filesystem transport, which
# needs no server and keeps messages under var/broker.
CELERY_BROKER_URL_CONFIGURED = env_optional_str("CELERY_BROKER_URL")
USING_EMBEDDED_BROKER = CELERY_BROKER_URL_CONFIGURED is None
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = CELERY_BROKER_URL_CONFIGURED or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Otherwise kombu writes its exchange tables to ./control, wherever the process started.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    if USING_EMBEDDED_BROKER
    else {}
)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "dermatriage")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Results live on the Prediction row; a Celery result backend would be a second, stale copy.
CELERY_TASK_IGNORE_RESULT = True
# A message is a wake-up for an idle worker; one reserved by a busy worker wakes nobody.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Stops Celery's Django fixup from closing the database connection after every task (it then
# closes it every 2 x this many); webapp.config.celery tidies connections as Django does for
# requests instead, honouring CONN_MAX_AGE.
CELERY_DB_REUSE_MAX = 500
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Scoring (webapp.scoring): the prediction rows are the queue; Celery messages only wake
# workers to drain it. Pending predictions a worker scores together in one forward pass.
SCORING_BATCH_SIZE = env_int("DERMATRIAGE_SCORING_BATCH_SIZE", 16, minimum=1)
# A running prediction whose claim is older than this belongs to a worker that died, and is
# taken back. Keep it above the scoring task's time limit (webapp.scoring.tasks).
SCORING_STALE_AFTER_SECONDS = env_int("DERMATRIAGE_SCORING_STALE_AFTER", 600, minimum=10)
# Beat wakes a worker this often: the longest a prediction waits once due when its own wake-up
# was lost (the broker was down at upload) or its claim went stale. Run one beat per
# deployment: `celery -A webapp.config beat`.
SCORING_WAKE_INTERVAL_SECONDS = env_int("DERMATRIAGE_SCORING_WAKE_INTERVAL", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "scoring-wake": {
        "task": "scoring.predictions_score",
        "schedule": SCORING_WAKE_INTERVAL_SECONDS,
        # A wake-up still queued when the next is due adds nothing: drop it, not pile up.
        "options": {"expires": SCORING_WAKE_INTERVAL_SECONDS},
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.accounts.authentication.ApiTokenAuthentication",
        "webapp.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "webapp.lib.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "webapp.lib.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "webapp.lib.api.DefaultPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "webapp.lib.schema.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.config.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "DermaTriage API",
    "DESCRIPTION": (
        "Upload dermoscopic lesion images, follow their asynchronous scoring and review "
        f"flagged cases.\n\n**{DISCLAIMER}**\n\n"
        "## Authentication\n\n"
        "Exchange your username and password for an API token with "
        "`POST /api/v1/auth/token/`, then send it with every request as "
        "`Authorization: Token <token>` (or `Authorization: Bearer <token>`). The same "
        "header fetches image files from the `file_url` in image payloads. What you see and "
        "may do follows from your account's role. The token is shown once (only a digest of "
        "it is kept) and stops working at its `expires_at`, when your password changes, and "
        "when `DELETE /api/v1/auth/token/` revokes it."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and its docs describe the API and hold no one's data: anyone may read them,
    # and they ignore credentials, so a stale token or session cannot lock anyone out.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
}
