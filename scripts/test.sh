#!/usr/bin/env bash
# Run the whole test suite against the local PostgreSQL and Redis (override with env vars).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/webapp -k queue
set -euo pipefail

cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dermatriage}"
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-test-only-key-not-secret}"
# Connections held open across tests keep pytest-django from dropping the test database.
export DATABASE_CONN_MAX_AGE="${DATABASE_CONN_MAX_AGE:-0}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}"
# A queue of its own per run, so two runs sharing a Redis never take each other's tasks.
export CELERY_TASK_DEFAULT_QUEUE="${CELERY_TASK_DEFAULT_QUEUE:-dermatriage-test-$$}"

# The browser tests drive Debian's chromium (Playwright cannot download its own browser here).
if [[ -n "${CI:-}" && ! -x /usr/bin/chromium && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  echo "Installing chromium for the browser tests"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

exec .venv/bin/pytest "$@"
