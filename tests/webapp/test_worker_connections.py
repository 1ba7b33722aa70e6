"""A worker keeps its database connection across tasks, and replaces one that broke."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest
from celery import Task

# The class is there at run time; celery-types does not declare it.
from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined]
from django.db import OperationalError, connection, connections

from webapp.config.celery import app, database_connections_tidy

pytestmark = pytest.mark.django_db(transaction=True)


def fake_task(*, eager: bool) -> Task:
    """All the signal handlers read of a task: whether it runs eagerly in its caller."""
    return cast(Task, SimpleNamespace(request=SimpleNamespace(is_eager=eager)))


WORKER_TASK = fake_task(eager=False)


def run_task_lifecycle() -> None:
    """What a worker does around every task: Celery's Django fixup, then our tidy-up."""
    fixup = DjangoWorkerFixup(app)
    fixup.on_task_prerun(sender=WORKER_TASK)
    database_connections_tidy(task=WORKER_TASK)
    fixup.on_task_postrun(sender=WORKER_TASK)
    database_connections_tidy(task=WORKER_TASK)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.fixture
def persistent_connection():
    """The connection as a worker with CONN_MAX_AGE > 0 holds it (tests run with 0)."""
    connection.ensure_connection()
    connection.close_at = None
    yield connection
    connection.close()


def test_a_healthy_connection_serves_the_next_task(persistent_connection) -> None:
    before = backend_pid()
    run_task_lifecycle()
    run_task_lifecycle()
    assert backend_pid() == before


def test_a_connection_the_database_dropped_is_replaced_before_the_next_task(
    persistent_connection,
) -> None:
    dropped = backend_pid()
    with (
        connections["default"]
        .__class__({**connection.settings_dict}, alias="killer")
        .cursor() as killer
    ):
        killer.execute("SELECT pg_terminate_backend(%s)", [dropped])
    with pytest.raises(OperationalError):
        backend_pid()  # the task that met the dropped connection fails ...
    run_task_lifecycle()
    assert backend_pid() != dropped  # ... and the next one gets a fresh connection


def test_an_eager_task_leaves_its_callers_connection_alone(persistent_connection) -> None:
    before = backend_pid()
    connection.errors_occurred = True  # would make a worker drop an unusable connection
    database_connections_tidy(task=fake_task(eager=True))
    assert connection.connection is not None
    assert backend_pid() == before
