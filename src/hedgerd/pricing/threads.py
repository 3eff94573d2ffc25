"""The thread pool a large vectorised reprice is split over (pricing kernels, the Greeks
book). numpy and scipy ufuncs release the GIL, so parts run in parallel; every thread writes
its own slice of the outputs, so results do not depend on the thread count."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor


class WorkerPool:
    """`threads` parts per split reprice and a pool started on first use. With
    `caller_works` the calling thread computes one part itself, so the pool has one worker
    fewer than `threads`."""

    def __init__(self, threads: int, name: str, *, caller_works: bool) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._threads = threads
        self._name = name
        self._caller_works = caller_works
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget_after_fork)

    def _forget_after_fork(self) -> None:
        # a forked child inherits the pool object but not its threads
        self._pool = None
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        return self._threads

    def set_threads(self, n: int) -> None:
        """Change the thread count (>= 1; 1: no threads); a running pool is shut down."""
        if n < 1:
            raise ValueError(f"threads must be >= 1, got {n}")
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            self._threads = n

    def executor(self) -> ThreadPoolExecutor:
        """The pool, started if needed."""
        with self._lock:
            if self._pool is None:
                workers = self._threads - 1 if self._caller_works else self._threads
                self._pool = ThreadPoolExecutor(
                    max_workers=max(1, workers), thread_name_prefix=self._name
                )
            return self._pool
