"""Fault-test support: a throwaway Redis, pointing this process's Celery app at another broker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from benchmarks.support import free_port, stop_process


class ThrowawayRedis:
    """A redis-server of the test's own on a loopback port, so stopping it disturbs no one."""

    def __init__(self, *, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed")
        command = [
            executable, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Stop the server with SIGSTOP for the block: it accepts connections, answers nothing."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process, timeout=10)
        self.process = None


@contextmanager
def throwaway_redis(workdir: Path) -> Iterator[ThrowawayRedis]:
    redis = ThrowawayRedis(port=free_port(), workdir=workdir)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Send this process's tasks to another broker until the block ends."""
    from webapp.config.celery import app

    def reconnect(broker_url: str) -> None:
        app.conf.update(
            broker_url=broker_url, broker_write_url=broker_url, broker_read_url=broker_url
        )
        app.close()  # drops the pooled connections to the old broker
        vars(app.amqp)["_producer_pool"] = None

    original = app.conf.broker_url
    reconnect(url)
    try:
        yield
    finally:
        reconnect(original)


@contextmanager
def private_queue(test_settings: object) -> Iterator[str]:
    """Route this test's scoring tasks to a queue no other worker consumes; delete it after."""
    from webapp.config.celery import app

    name = f"dermatriage-private-{uuid.uuid4().hex[:8]}"
    test_settings.CELERY_TASK_DEFAULT_QUEUE = name  # type: ignore[attr-defined]
    try:
        yield name
    finally:
        with app.connection_for_write() as connection:
            channel: Any = connection.default_channel
            channel.client.delete(name)


def queue_length(name: str) -> int:
    from webapp.config.celery import app

    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        return int(channel.client.llen(name))
