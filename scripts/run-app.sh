#!/usr/bin/env bash
# Run DermaTriage locally: install, migrate, create demo users, start the web server and a
# scoring worker. With no DATABASE_URL / CELERY_BROKER_URL it uses embedded defaults (SQLite
# and a filesystem broker under var/); set them (or put them in .env) for PostgreSQL and Redis.
#   scripts/run-app.sh            # http://127.0.0.1:8000
#   PORT=9000 scripts/run-app.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

if [[ -f .env ]]; then
  echo "Reading settings from .env"
  set -a
  # shellcheck disable=SC1091
  source .env
  set +a
fi

# (Re)install when the virtualenv is missing or pyproject.toml changed since the last install.
STAMP=.venv/.dermatriage-installed
if [[ ! -x .venv/bin/python ]]; then
  echo "Creating .venv"
  "${PYTHON:-python3}" -m venv .venv
fi
if [[ ! -f "$STAMP" || pyproject.toml -nt "$STAMP" ]]; then
  echo "Installing DermaTriage and its dependencies into .venv"
  .venv/bin/pip install --upgrade pip >/dev/null
  .venv/bin/pip install -e '.[training,dev]'
  touch "$STAMP"
fi

VAR_DIR="${DERMATRIAGE_VAR_DIR:-$ROOT/var}"
mkdir -p "$VAR_DIR"
if [[ -z "${DATABASE_URL:-}" ]]; then
  echo "No DATABASE_URL set: using the embedded SQLite database $VAR_DIR/db.sqlite3"
else
  echo "Using the database from DATABASE_URL"
fi
if [[ -z "${CELERY_BROKER_URL:-}" ]]; then
  echo "No CELERY_BROKER_URL set: using the filesystem broker under $VAR_DIR/broker (no server needed)"
  mkdir -p "$VAR_DIR/broker/queue" "$VAR_DIR/broker/processed" "$VAR_DIR/broker/control"
else
  echo "Using the Celery broker from CELERY_BROKER_URL"
fi

.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput >/dev/null
.venv/bin/python manage.py demo_users

HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"

# --beat sends the periodic wake-up that scores predictions left pending (one per deployment).
.venv/bin/celery -A webapp.config worker --loglevel=INFO --beat \
  --schedule="$VAR_DIR/celerybeat-schedule" \
  --concurrency="${WORKER_CONCURRENCY:-1}" &
WORKER_PID=$!
.venv/bin/gunicorn webapp.config.wsgi --bind "$HOST:$PORT" \
  --workers "${WEB_CONCURRENCY:-2}" --access-logfile - &
WEB_PID=$!

stop() {
  trap - EXIT INT TERM
  kill -TERM "$WEB_PID" "$WORKER_PID" 2>/dev/null || true
  # A Celery warm shutdown waits for the running task; give it a while, then force it.
  for _ in $(seq 30); do
    kill -0 "$WORKER_PID" 2>/dev/null || kill -0 "$WEB_PID" 2>/dev/null || break
    sleep 1
  done
  kill -QUIT "$WORKER_PID" 2>/dev/null || true
  sleep 2
  kill -KILL "$WEB_PID" "$WORKER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

echo "DermaTriage is running at http://$HOST:$PORT/ (Ctrl-C stops the server and the worker)"
echo "For education and research, not a medical diagnosis."
# Exit (and stop the other) as soon as either process dies.
wait -n "$WEB_PID" "$WORKER_PID"
