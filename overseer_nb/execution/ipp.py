"""Running attempts on an ipyparallel cluster: one load-balanced task per attempt.

:func:`connect` finds the cluster and checks the handlers on one engine;
the :class:`IPyParallelExecutor` it returns pickles each run's handlers
through its own :class:`~overseer_nb.execution.shipping.Shipper` and submits
through the :class:`~overseer_nb.execution.connection.Connection` all runs on
one client share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..graph import JobGraph
from .connection import Connection
from .recovery import follow, known_tasks, sent_tasks
from .seam import Executor, Report, Task
from .shipping import Shipper

__all__ = ["IPyParallelExecutor", "connect", "store_problem"]


class IPyParallelExecutor(Executor):
    """Runs one run's attempts on the engines of an ipyparallel ``Client``.

    ``cluster`` (an ``ipyparallel.Cluster``, optional) lets it start a
    replacement for every engine that dies, so a run can finish. ``shipper``
    keeps the pickled handlers; each run has its own.
    """

    def __init__(self, client: Any, cluster: Any = None, *, shipper: Shipper | None = None):
        self.client = client
        self.cluster = cluster
        self.shipper = shipper or Shipper()
        self._conn = Connection.for_client(client, cluster)
        self._recovered: dict[tuple[str, int], tuple[str, str, Any]] = {}

    @property
    def dependencies(self) -> bool:  # type: ignore[override]
        """True unless the cluster's scheduler is the pure ZMQ one, which has no ``after=``."""
        return getattr(self._conn.view, "_task_scheme", "") != "pure"

    @property
    def connected(self) -> bool:  # type: ignore[override]
        """False once its cluster was stopped or stopped answering: ``run.resume()`` connects anew."""
        return not (self._conn.lost or self._conn.closed)

    def start(self, report: Report) -> None:
        super().start(report)
        self._conn.attach(self)
        if self._recovered:
            follow(self._conn, self, self._recovered)
            self._recovered = {}

    def recover(self, tasks: Mapping[tuple[str, int], tuple[str, str]]) -> dict[tuple[str, int], Any]:
        """Ask the hub about attempts an earlier kernel sent; follow the known ones from :meth:`start`."""
        known = known_tasks(self._conn, {key: task for key, (task, _run) in tasks.items()})
        self._recovered.update({key: (tasks[key][0], tasks[key][1], engine) for key, engine in known.items()})
        if getattr(self, "report", None) is not None:  # already started: follow them now
            follow(self._conn, self, self._recovered)
            self._recovered = {}
        return known

    def sent_tasks(self, run_id: str) -> dict[tuple[str, int], tuple[str, bool]]:
        """What any kernel sent for run ``run_id``, as the hub knows it: (job, attempt) -> (task id, ran)."""
        return sent_tasks(self._conn, run_id)

    def submit(self, task: Task) -> None:
        """Send ``task`` with its stages pickled (once per distinct set of functions) and its args pickled."""
        call = dict(
            job=task.job,
            index=task.index,
            job_id=task.id,
            attempt=task.attempt,
            run_id=task.run_id,
            stages=self.shipper.pickle(task.job, task.stages),
            args=task.args_blob,
            inputs=task.inputs,
            max_result_bytes=task.max_result_bytes,
            capture_limit=task.max_output_chars,
            on_engine=True,
            store=task.store,
        )
        self._conn.submit(self, task, call)

    def handlers_changed(self) -> None:
        self.shipper.forget()

    def interrupt(self, job: str, attempt: int, engine: Any, kill_after: float) -> None:
        self._conn.interrupt(self, job, attempt, engine, kill_after)

    def withdraw(self, job: str, attempt: int) -> None:
        self._conn.withdraw(self, job, attempt)

    def store_problem(self, root: str) -> str | None:
        """Every engine must read and write the store at ``root`` and see the kernel's files there."""
        return self._conn.store_problem(root)

    def release(self, engine: Any, paths: list[str]) -> None:
        self._conn.release(engine, paths)

    def release_run(self, run_id: str) -> None:
        self._conn.release_run(run_id)

    def engine_count(self) -> int:
        return len(self.client.ids)

    def queue_limit(self) -> int:
        """64, or 16 per engine: enough queued to keep every engine busy, not a flood for the scheduler.

        Ten thousand tasks sent at once keep the controller from answering the
        watchdog's ping for seconds on a busy machine.
        """
        return max(64, 16 * len(self.client.ids))

    def engines_coming(self) -> bool:
        from .cluster import engines_starting

        return self.cluster is not None and engines_starting(self.cluster)

    def close(self) -> None:
        self._conn.detach(self)


def connect(
    cluster: Any = None, *, graph: JobGraph, handlers: Mapping[str, Any], preflight: bool = True
) -> IPyParallelExecutor:
    """The executor for a run of ``graph`` on ``cluster``; with ``preflight``, check the handlers first.

    cluster: an ``ipyparallel.Client`` or ``Cluster``; default: the cluster set
    by ``use_cluster``, else the local one, started if needed. The check runs
    on one engine (:func:`~overseer_nb.execution.preflight.check_handlers_on_engine`)
    and pickles through the shipper the executor keeps, so the run ships the same pickles.

    Raises :class:`~overseer_nb.errors.ClusterError` if there is no cluster to
    use, :class:`~overseer_nb.errors.HandlerError` if a handler cannot be
    pickled or cannot run on the engines.
    """
    from .cluster import current_client
    from .preflight import check_handlers_on_engine

    client, found = current_client(cluster)
    shipper = Shipper()
    if preflight:  # before the executor: it sends every engine a task of its own
        check_handlers_on_engine(client, graph, handlers, shipper)
    return IPyParallelExecutor(client, found, shipper=shipper)


def store_problem(root: str) -> str | None:
    """Why the engines of the connected default cluster cannot share the store at ``root`` (None: they can).

    Also None with no cluster connected, or one without engines: nothing to ask.
    """
    from .cluster import connected

    found = connected()
    if found is None or not found[0].ids:
        return None
    client, cluster = found
    return Connection.for_client(client, cluster).store_problem(root)
