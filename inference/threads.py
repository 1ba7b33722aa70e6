"""The cores this process may use, and its named thread pools."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_process_pools: dict[tuple[int, str], ThreadPoolExecutor] = {}


def process_thread_pool(name: str, max_workers: int) -> ThreadPoolExecutor:
    """This process's thread pool called `name`, made on first use.

    Keyed by pid as well: a pool inherited through fork() has no threads behind it.
    """
    key = (os.getpid(), name)
    if key not in _process_pools:
        _process_pools[key] = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
    return _process_pools[key]
