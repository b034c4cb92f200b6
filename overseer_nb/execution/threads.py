"""ThreadExecutor: attempts on threads of this process."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from ..events import Ended, Started
from .seam import Executor, Task, outcome_from_report

__all__ = ["ThreadExecutor"]


class ThreadExecutor(Executor):
    """Runs attempts on threads of this process.

    Handlers run in this interpreter on the objects themselves (nothing is
    pickled but results), so closures over locks or lists work; an interrupt
    cannot stop a running handler (its late result is ignored). Each job's
    output is captured on its own thread; what other threads print is untouched.
    """

    def __init__(self, workers: int = 2):
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overseer-job")
        self._futures: dict[tuple[str, int], Future] = {}
        self._lock = threading.Lock()

    def submit(self, task: Task) -> None:
        from .engine import run_attempt

        def call() -> None:
            engine = threading.current_thread().name
            self.report(Started(task.job, task.attempt, engine, time.time()))
            report = run_attempt(
                job=task.job,
                index=task.index,
                job_id=task.id,
                attempt=task.attempt,
                run_id=task.run_id,
                stages=task.stages,  # the functions themselves: nothing is pickled but results
                args=task.args,
                inputs=task.inputs,
                max_result_bytes=task.max_result_bytes,
                capture_limit=task.max_output_chars,
                store=task.store,
            )
            self.report(Ended(task.job, task.attempt, outcome_from_report(report, engine), time.time()))

        with self._lock:
            self._futures[(task.job, task.attempt)] = self._pool.submit(call)

    def withdraw(self, job: str, attempt: int) -> None:
        with self._lock:
            fut = self._futures.pop((job, attempt), None)
        if fut is not None:
            fut.cancel()

    def engine_count(self) -> int:
        return self.workers

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
