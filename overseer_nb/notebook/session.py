"""What the magics drive: graphs named in a notebook's namespace, their handlers, their runs.

A :class:`Notebook` looks graphs up by name in the user namespace and keeps
one handler dict per graph name. Binding (``%%overseer_handlers``) updates
that dict in place, so a run started from it picks up re-bound handlers at
its next retry. Every method raises an :class:`~overseer_nb.errors.OverseerError`
subclass whose message names the bad value and the fix; nothing is changed
when it does.
"""

from __future__ import annotations

import difflib
import json
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .. import journal as journal_package
from ..api import last_run, run
from ..display import cluster_text, retry_text
from ..errors import ArgsError, GraphError, MissingHandlerError, OptionError, RunError
from ..execution import describe, stop_cluster, store_problem, use_cluster
from ..graph import JobGraph
from ..running import Run
from .binding import Binding, bind_handlers, defined_names, python_name
from .cells import graph_from_cell

__all__ = ["Notebook", "parse_args_json", "choose_cluster"]


class Notebook:
    """Named graphs, their handlers and runs, over a namespace (IPython's ``user_ns``).

    namespace: a function returning the namespace dict, read at each call so a
    ``%reset`` namespace is seen.
    """

    def __init__(self, namespace: Callable[[], dict[str, Any]]):
        self._namespace = namespace
        self.handlers: dict[str, dict[str, Any]] = {}
        # weak: a run nobody holds any more is still found through the journal
        self.runs: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()
        self._latest: tuple[float, Run] | None = None

    @property
    def namespace(self) -> dict[str, Any]:
        """The namespace graphs and runs are looked up in."""
        return self._namespace()

    # -- graphs ----------------------------------------------------------------------
    def define_graph(self, name: str, body: str, *, first_line: int = 1) -> JobGraph:
        """Parse ``body`` (see :mod:`overseer_nb.notebook.cells`) and bind ``name`` to the graph."""
        _check_identifier(name, "graph")
        graph = graph_from_cell(body, self.namespace, first_line=first_line)
        self.namespace[name] = graph
        return graph

    def graph(self, name: str, *, purpose: str = "") -> JobGraph:
        """The graph bound to ``name``; :class:`GraphError` with the closest name if none."""
        value = self.namespace.get(name)
        if isinstance(value, JobGraph):
            return value
        if isinstance(value, Mapping):
            return JobGraph(value)
        graphs = [n for n, v in self.namespace.items() if isinstance(v, JobGraph) and not n.startswith("_")]
        close = difflib.get_close_matches(name, graphs, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        what = "no graph" if value is None else f"{type(value).__name__}, not a graph,"
        raise GraphError(
            f"{what} named {name!r} in this notebook{purpose}; {hint}define it first "
            f"with a %%overseer_graph {name} cell"
        )

    # -- handlers --------------------------------------------------------------------
    def bind(self, name: str, definitions: Mapping[str, Any]) -> Binding:
        """Bind the handlers among ``definitions`` (a cell's top-level names) to graph ``name``."""
        graph = self.graph(name)
        handlers = self.handlers.setdefault(name, {})
        return bind_handlers(graph, definitions, handlers, graph_name=name)

    def bind_source(self, name: str, source: str) -> Binding:
        """Bind the handlers a cell defines to graph ``name``, once the cell has run.

        source: the cell as Python (IPython's ``transform_cell``); its top-level
        names are looked up in the namespace.
        """
        ns = self.namespace
        return self.bind(name, {n: ns[n] for n in defined_names(source) if n in ns})

    def checked_handlers(self, name: str, graph: JobGraph) -> dict[str, Any]:
        """The handler dict of graph ``name``; :class:`MissingHandlerError` if a job type has none."""
        handlers = self.handlers.setdefault(name, {})
        missing = [job for job in graph if job not in handlers]
        if missing:
            error = MissingHandlerError(missing)
            first = missing[0]
            error.args = (
                f"graph {name!r} has no handler for {', '.join(missing)}; define "
                f"def {python_name(first)}(job): ... in a %%overseer_handlers {name} cell "
                f"(or mark a function @ov.handler({first!r}))",
            )
            raise error
        return handlers

    # -- runs ------------------------------------------------------------------------
    def start(self, name: str, *, args: str | Mapping | None = None, **options: Any) -> Run:
        """Start graph ``name`` with its current handlers; ``args`` may be JSON text.

        options: retries, retry_delay, timeout, max_faults, cache, eager, dry_run (None: the configured default).
        With ``dry_run``, the cache's plan (a table) instead of a run.
        """
        graph = self.graph(name)
        handlers = self.checked_handlers(name, graph)
        if isinstance(args, str):
            args = parse_args_json(args)
        given = {k: v for k, v in options.items() if v is not None}
        try:
            started = run(graph, handlers, args=args, **given)
        except OptionError as exc:  # checked before anything starts
            exc.args = (f"{exc}; nothing was started",)
            raise
        if not isinstance(started, Run):  # a dry run's plan
            return started
        self.runs[started.run_id] = started
        return started

    def retry(self, job: str | None = None, *, ref: str | None = None, rerun: bool = False,
              dry_run: bool = False) -> str:
        """Retry (with ``rerun``: rerun from ``job``) the run ``ref`` names; say which jobs run again.

        job: the root of the subtree (default: every failed or aborted job); ``rerun`` needs one.
        ref: the run, see :meth:`find_run`. dry_run: change nothing, only say.
        """
        found = self.find_run(ref)
        selected = found.rerun(job, dry_run=dry_run) if rerun else found.retry(job, dry_run=dry_run)
        return retry_text(found, selected, rerun=rerun, dry_run=dry_run)

    def find_run(self, ref: str | None = None) -> Run:
        """The run ``ref`` names: a variable holding a run, or a run id; default the last run."""
        if not ref:
            latest = last_run()
            if self._latest and (latest is None or latest.created < self._latest[0]):
                latest = self._latest[1]  # resumed after the last ov.run
            if latest is None:
                raise RunError("no run yet in this kernel; start one with %overseer_run NAME")
            return latest
        value = self.namespace.get(ref)
        if isinstance(value, Run):
            return value
        known = dict(self.runs)
        latest = last_run()
        if latest is not None:
            known[latest.run_id] = latest
        known.update((v.run_id, v) for v in self.namespace.values() if isinstance(v, Run))
        if ref in known:
            return known[ref]
        if getattr(journal_package, "load_run", None) is not None:
            return journal_package.load_run(ref)  # RunError with the journal's closest ids
        close = difflib.get_close_matches(ref, list(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise RunError(
            f"no run {ref!r} in this kernel; {hint}give a variable holding a run, or a run id "
            "(%overseer_runs lists past runs; %overseer_resume RUN_ID reopens one)"
        )

    def diff(self, a: str, b: str | None = None) -> Any:
        """What differs between the runs ``a`` and ``b`` (default: the last run): ``ov.diff`` of them.

        Each is a variable holding a run (or a run id), or a run id of the journal;
        :class:`RunError` naming the bad one and what to give instead.
        """
        return self.journal("diff")(self.run_named(a, "A"), self.run_named(b, "B"))

    def run_named(self, ref: str | None, which: str = "") -> Run:
        """:meth:`find_run`, also for a variable holding a run id; :class:`RunError` for a variable holding neither."""
        value = self.namespace.get(ref) if ref else None
        value = getattr(value, "run_id", value)  # a row of ov.runs()
        if isinstance(value, str):
            ref = value
        elif value is not None and not isinstance(value, Run):
            label = f"{which} " if which else ""
            raise RunError(
                f"run {label}{ref!r} is a variable holding {type(value).__name__}, not a run; give a variable "
                f"holding a run (run = %overseer_run NAME) or a run id (%overseer_runs lists them)"
            )
        return self.find_run(ref)

    def journal(self, name: str) -> Callable[..., Any]:
        """``overseer_nb.journal.runs`` or ``.load_run``; :class:`RunError` if there is no journal.

        Looked up at each call, on the package, so a journal function replaced
        there (a test's stand-in) is the one called.
        """
        fn = getattr(journal_package, name, None)
        if fn is None:
            raise RunError(
                f"the run journal is not available in this version of overseer_nb (no ov.{name}); "
                "runs of this kernel are still at hand: %overseer_status, ov.last_run()"
            )
        return fn

    def resume(self, run_id: str, *, graph_name: str | None = None) -> Run:
        """Load run ``run_id`` from the journal and resume it with the notebook's handlers."""
        loaded = self.journal("load_run")(run_id)  # RunError with the journal's closest ids
        name = graph_name or self.graph_name_of(loaded.graph)
        graph = self.graph(name)
        if graph != loaded.graph:
            raise GraphError(
                f"graph {name!r} is not the graph of run {run_id!r} (its job types: "
                f"{', '.join(loaded.graph)}); give the graph it ran with"
            )
        resumed = loaded.resume(self.checked_handlers(name, graph))
        self.runs[resumed.run_id] = resumed
        self._latest = (time.time(), resumed)
        return resumed

    def graph_name_of(self, graph: JobGraph) -> str:
        """The name of a graph equal to ``graph`` that has handlers bound, for resuming a run."""
        names = [n for n in self.handlers if isinstance(self.namespace.get(n), JobGraph)
                 and self.namespace[n] == graph]
        if not names:
            raise GraphError(
                f"no graph of this notebook with handlers matches the run's graph "
                f"(job types {', '.join(graph)}); define it with %%overseer_graph NAME and "
                "bind its handlers with %%overseer_handlers NAME, then resume"
            )
        return names[0]


def choose_cluster(*, stop: bool = False, default_engines: int = 1, **where: Any) -> str:
    """Stop the cluster in use, or choose the one later runs use; say which it is.

    where: ``use_cluster`` arguments (engines, profile, cluster_id, url_file);
    none given: only say. default_engines: the engines a first run would start.
    """
    if stop:
        info = describe()
        stop_cluster()
        if not info["connected"]:
            return "no cluster in use"
        # a cluster overseer_nb only connected to keeps running: say so, not "stopped"
        verb = "stopped" if info.get("owned") else "disconnected from (still running)"
        return f"{verb}: {cluster_text(info, 0)}"
    if where:
        use_cluster(**where)
    info = describe()
    if info.get("connected") and info.get("engines"):
        root = journal_package.result_store().root
        info.update(store=root, store_problem=store_problem(root))
    return cluster_text(info, default_engines)


def parse_args_json(text: str) -> dict[str, Any]:
    """The run args given as JSON text (an object); :class:`ArgsError` naming the problem."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and text[1] in "{[":
        text = text[1:-1]  # quotes a shell-like split left on
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArgsError(
            f"--args is not valid JSON ({exc.msg} at column {exc.colno}): {text!r}; write a "
            """JSON object with double-quoted keys, e.g. --args '{"org": 123}'"""
        ) from None
    if not isinstance(value, dict):
        raise ArgsError(
            f"--args must be a JSON object, got {type(value).__name__} {text!r}; "
            """e.g. --args '{"org": 123}'"""
        )
    return value


def _check_identifier(name: str, what: str) -> None:
    if not name.isidentifier():
        raise GraphError(
            f"{what} name {name!r} is not a Python name; use letters, digits and '_', e.g. pipeline"
        )
