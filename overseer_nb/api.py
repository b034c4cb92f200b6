"""``overseer_nb.run``: validate, pick the executor, start a :class:`Run`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import defaults
from .executors import Executor
from .graph import JobGraph
from .handlers import validate_graph_handlers
from .run import Run
from .textlog import log_step

__all__ = ["run", "last_run"]

_UNSET: Any = object()
_last: list[Run] = []


def run(
    graph: JobGraph | Mapping[str, Any],
    handlers: Mapping[str, Any],
    *,
    args: Mapping[str, Any] | None = None,
    cluster: Any = None,
    retries: int = _UNSET,
    retry_delay: float = _UNSET,
    timeout: float | None = _UNSET,
    max_faults: int = _UNSET,
    executor: Executor | None = None,
    **options: Any,
) -> Run:
    """Start running ``graph`` with ``handlers``; return the :class:`Run` at once.

    graph: a :class:`JobGraph` or a dict job type -> list of parent job types.
    handlers: job type -> ``f(job)`` or a lifecycle dict; looked up again at
    each retry, so a handler replaced in this mapping (or redefined in a
    notebook cell) is the one that runs.
    args: the run's arguments, given to every job as ``job.args``.
    cluster: an ``ipyparallel.Client`` or ``Cluster``; default: the cluster
    set by ``use_cluster``, else a local cluster started on first use.
    retries, retry_delay, timeout, max_faults and the other
    :class:`~overseer_nb.options.RunOptions` (fault_backoff, fault_backoff_max,
    max_engine_losses, kill_grace, max_result_bytes): defaults from the
    ``Overseer`` configuration.
    executor: run attempts somewhere else than a cluster, e.g.
    ``ThreadExecutor()`` (this process).

    Raises ``GraphError``/``HandlerError``/``ArgsError`` before anything runs.
    """
    graph = graph if isinstance(graph, JobGraph) else JobGraph(graph)
    validate_graph_handlers(graph, handlers)
    given = dict(retries=retries, retry_delay=retry_delay, timeout=timeout, max_faults=max_faults)
    options.update({k: v for k, v in given.items() if v is not _UNSET})
    opts = defaults().run_options().with_changes(**options)
    if executor is None:
        from ._ipp import IPyParallelExecutor
        from .cluster import current_client

        client, cl = current_client(cluster)
        executor = IPyParallelExecutor(client, cl)
    started = Run(graph, handlers, executor, args=args, options=opts)
    started.subscribe(log_step)
    _last[:] = [started]
    return started.start()


def last_run() -> Run | None:
    """The run started last in this process, or None."""
    return _last[0] if _last else None
