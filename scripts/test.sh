#!/usr/bin/env bash
# Run the whole test suite against the local PostgreSQL and Redis (override with env vars).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/webapp -k queue
set -euo pipefail

cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dermatriage}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}"
# A queue of its own per run, so two runs sharing a Redis never take each other's tasks.
export CELERY_TASK_DEFAULT_QUEUE="${CELERY_TASK_DEFAULT_QUEUE:-dermatriage-test-$$}"

exec .venv/bin/pytest "$@"
