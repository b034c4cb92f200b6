"""``overseer_nb.run``: validate, pick the executor, start a :class:`Run`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run_cache import plan_table
from .config import defaults
from .display import Table, log_step
from .errors import OptionError
from .execution import Detached, Executor, connect
from .graph import JobGraph
from .handlers import validate_graph_handlers
from .journal import Recorder, attach, open_journal
from .running import Run
from .store import store_location

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
    journal: Any = None,
    store: Any = None,
    preflight: bool = True,
    dry_run: bool = False,
    **options: Any,
) -> Run | Table:
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
    preflight: first check on one engine that every handler loads there and
    that the modules it imports are installed (skipped if all engines are busy).
    journal: where the run is journaled: a file path or ``":memory:"``;
    default: ``OVERSEER_NB_JOURNAL``, else ``c.Overseer.journal``, else a file
    in the Jupyter data directory; ``False``: not journaled.
    store: the folder of the result store, where results bigger than
    ``c.Overseer.store_inline_bytes`` stay (engines write them, children and
    ``run.results`` read them); default: ``OVERSEER_NB_STORE``, else
    ``c.Overseer.store``, else a folder ``results`` beside the journal.
    Every engine must share it with the kernel (checked first; otherwise
    results are relayed through the kernel and ``run.message`` says so);
    ``False``: relay every result through the kernel.
    cache: reuse the result of an earlier finished job (from any run in the
    journal) whose fingerprint is the same: its handler's code and the globals
    it reads, the args, its inputs' contents (SPEC §13); default
    ``c.Overseer.cache``. With ``dry_run=True`` nothing runs: the returned
    table says, job type by job type, what would be reused and what would run and why.

    Raises ``GraphError``/``HandlerError``/``ArgsError`` before anything runs,
    ``JournalError`` if the journal cannot be written (nothing is submitted).
    """
    graph = graph if isinstance(graph, JobGraph) else JobGraph(graph)
    validate_graph_handlers(graph, handlers)
    given = dict(retries=retries, retry_delay=retry_delay, timeout=timeout, max_faults=max_faults)
    options.update({k: v for k, v in given.items() if v is not _UNSET})
    opts = defaults().run_options().with_changes(**options)
    book = open_journal(journal)  # before any cluster starts: a bad journal stops here
    if dry_run:
        return _dry_run(graph, handlers, args, opts, book)
    if book is not None:
        book.require_writable()
    if executor is None:
        executor = connect(cluster, graph=graph, handlers=handlers, preflight=preflight)
    root = None if store is False else store_location(
        store, configured=defaults().store, journal_path=book.path if book is not None else None
    )
    started = Run(graph, handlers, executor, args=args, options=opts, store=root)
    started.subscribe(log_step)
    if book is not None:
        attach(started, book)
    _last[:] = [started]
    return started.start()


def _dry_run(graph: JobGraph, handlers: Mapping[str, Any], args: Any, opts: Any, book: Any) -> Table:
    if not opts.cache:
        raise OptionError(
            "dry_run=True says what a run would reuse from the cache; give cache=True too "
            "(a dry run of a retry or rerun is run.retry(dry_run=True) / run.rerun(job, dry_run=True))"
        )
    planned = Run(graph, handlers, Detached(), args=args, options=opts)
    planned.refresh_job_options()
    if book is not None:
        planned.use_recorder(Recorder.for_run(book, planned))  # writes only once registered: a dry run reads
    return plan_table(planned)


def last_run() -> Run | None:
    """The run started last in this process, or None."""
    return _last[0] if _last else None
