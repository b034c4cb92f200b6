"""The IPython extension: ``%load_ext overseer_nb`` adds these magics and the ``Overseer`` config.

Each magic parses its line, looks names up in the user namespace and calls one
function: a :class:`~overseer_nb.notebook.Notebook` method, a function of
:mod:`.session` or the public API; an :class:`~overseer_nb.errors.OverseerError`
becomes a short ``UsageError``.
"""

from __future__ import annotations

import ast
import functools
import os

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..config import Overseer, defaults, set_defaults
from ..display import status_table
from ..errors import OverseerError
from ..execution import prestart
from .session import Notebook, choose_cluster

__all__ = ["OverseerMagics", "load", "unload"]


_WHICH_RUN = "a variable holding a run, or a run id (default: the last run)"  # the help of every magic's RUN argument

def _usage_errors(fn):
    """Turn the API's errors into IPython's one-line ``UsageError`` (no traceback)."""

    @functools.wraps(fn)
    def wrapper(self, *args):
        try:
            return fn(self, *args)
        except OverseerError as exc:
            raise UsageError(str(exc)) from None

    return wrapper


@magics_class
class OverseerMagics(Magics):
    """The ``%overseer_*`` magics over one :class:`Notebook` and one ``Overseer`` config."""

    def __init__(self, shell, settings: Overseer):
        super().__init__(shell)
        self.settings = settings
        self.notebook = Notebook(lambda: self.shell.user_ns)

    @cell_magic
    @_usage_errors
    @magic_arguments()
    @argument("name", metavar="NAME", help="the variable the graph is bound to")
    def overseer_graph(self, line, cell):
        """Declare a job graph, one job per line, and bind NAME to it.

        Each line is `job: parent, parent`; a job with no parents is `job:` or
        `job`; `#` starts a comment. Job types may contain `-` and `.`. A body
        that is a Python expression (a dict job -> parents) is evaluated instead.

        Example:

            %%overseer_graph pipeline
            start:
            result1: start
            result2: start
            finish: result1, result2
        """
        args = parse_argstring(self.overseer_graph, line)
        display(self.notebook.define_graph(args.name, cell, first_line=2))

    @cell_magic
    @_usage_errors
    @magic_arguments()
    @argument("name", metavar="NAME", help="the graph whose handlers the cell defines")
    def overseer_handlers(self, line, cell):
        """Run the cell, then bind its functions to the job types of graph NAME.

        A top-level function (or lifecycle dict) named like a job type handles
        it (`-` and `.` read as `_`: `process_1a` handles `process-1a`);
        `@ov.handler("job-type")` binds a function explicitly. Running the cell
        again replaces those handlers, also for retries of a run already going.

        Example:

            %%overseer_handlers pipeline
            def start(job):
                return job.args["n"]
            def finish(job):
                return sum(job.inputs.values())
        """
        args = parse_argstring(self.overseer_handlers, line)
        self.notebook.graph(args.name, purpose=" to bind handlers to")  # before the cell runs
        self._run_cell(cell)
        print(self.notebook.bind_source(args.name, self.shell.transform_cell(cell)))

    @line_magic
    @no_var_expand
    @_usage_errors
    @magic_arguments()
    @argument("name", metavar="NAME", help="the graph to run (see %%%%overseer_graph)")
    @argument("--args", nargs="+", metavar="JSON", help="the run's arguments, a JSON object")
    @argument("--wait", action="store_true", help="block until the run can make no more progress")
    @argument("--retries", type=int, metavar="N", help="automatic retries after an exception")
    @argument("--retry-delay", type=float, metavar="S", help="seconds before an automatic retry")
    @argument("--timeout", type=float, metavar="S", help="seconds a job may run before it fails")
    @argument("--max-faults", type=int, metavar="N", help="faults (ov.fault) after which a job fails")
    @argument("--cache", action="store_true",
              help="reuse the results of earlier runs' jobs whose code, args and inputs did not change")
    @argument("--dry-run", action="store_true", help="with --cache: say what would be reused or run, and why; run nothing")
    @argument("--no-eager", action="store_true",
              help="send each job only once its parents finished, not ahead of them with after= (docs/dispatch.md)")
    def overseer_run(self, line):
        """Start running graph NAME with its handlers; show the run and return it.

        Options not given come from the Overseer configuration
        (`%config Overseer.max_faults = 3`).

        Example:

            run = %overseer_run pipeline --args '{"n": 10}' --retries 2
            %overseer_run pipeline --wait
            %overseer_run pipeline --cache --dry-run
        """
        a = parse_argstring(self.overseer_run, line)
        if a.dry_run and not a.cache:
            raise UsageError("--dry-run says what --cache would reuse; give both: %overseer_run NAME --cache --dry-run")
        run = self.notebook.start(
            a.name, args=" ".join(a.args) if a.args else None, retries=a.retries,
            retry_delay=a.retry_delay, timeout=a.timeout, max_faults=a.max_faults,
            cache=True if a.cache else None, dry_run=a.dry_run or None, eager=False if a.no_eager else None,
        )
        if a.dry_run:
            return run  # the plan: nothing was started
        return self._show(run, "overseer_run", wait=a.wait)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("run", nargs="?", metavar="RUN", help=_WHICH_RUN)
    @argument("--items", metavar="TYPE", help="one row per item of the mapped job type TYPE")
    def overseer_status(self, line):
        """Show a table of a run's jobs: status, attempts, engine, duration, error.

        A mapped job type is one row counting its items; --items TYPE lists them.

        Example:

            %overseer_status
            %overseer_status run2
            %overseer_status --items train
        """
        args = parse_argstring(self.overseer_status, line)
        try:
            return status_table(self.notebook.find_run(args.run), items=args.items)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("job", nargs="?", metavar="JOB",
              help="retry the subtree rooted at this job, or one item (train[3]) (default: every failed job)")
    @argument("--rerun", action="store_true", help="run JOB and all its descendants again, finished or not")
    @argument("--dry-run", action="store_true", help="only say which jobs would run again")
    @argument("--run", metavar="RUN", help=_WHICH_RUN)
    def overseer_retry(self, line):
        """Retry failed jobs and what they blocked, with the handlers as they are now.

        Example:

            %overseer_retry                 # every failed or aborted job
            %overseer_retry result2         # only that subtree
            %overseer_retry start --rerun --dry-run
        """
        a = parse_argstring(self.overseer_retry, line)
        if a.rerun and not a.job:
            raise UsageError("--rerun needs a JOB to rerun from, e.g. %overseer_retry start --rerun")
        print(self.notebook.retry(a.job, ref=a.run, rerun=a.rerun, dry_run=a.dry_run))

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("run", nargs="?", metavar="RUN", help=_WHICH_RUN)
    def overseer_cancel(self, line):
        """Cancel a run: no new job starts, running jobs are interrupted and aborted.

        Example:

            %overseer_cancel
        """
        args = parse_argstring(self.overseer_cancel, line)
        print(f"cancelled: {self.notebook.find_run(args.run).cancel().summary()}")

    @line_magic
    @_usage_errors
    def overseer_runs(self, line):
        """List the runs in the journal, newest first (needs the journal: ov.runs()).

        Example:

            %overseer_runs
        """
        if line.strip():
            raise UsageError(f"%overseer_runs takes no arguments, got {line.strip()!r}")
        return self.notebook.journal("runs")()

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("a", nargs="?", metavar="A", help="the first run: a variable holding a run, or a run id")
    @argument("b", nargs="?", metavar="B", help="the second run, as A (default: the last run)")
    @argument("-h", "--help", action="store_true", help="show this help")
    def overseer_diff(self, line):
        """Compare two runs: args, graph, handler code, and each job's outcome.

        Shows the args that differ; job types only in one run (a changed
        graph) and changed parents; job types whose handler code differs, with
        a unified diff of their source ("code unknown" where a run's code was
        not recorded, as in journals of older versions); and per job type: the
        display state in A and in B, a summary of its result (or its error),
        its duration and the change, its attempts. A mapped type is one row
        counting its items by state; its note names the items that differ.
        Runs are read from the journal when given by id (ov.diff(a, b)).

        Example:

            %overseer_diff first second
            %overseer_diff 20261127-191000-3fa2c1 20261128-093000-88ab01
            %overseer_diff 20261127-191000-3fa2c1       # against the last run
        """
        args = parse_argstring(self.overseer_diff, line)
        if args.help:
            print(self.overseer_diff.__doc__)
            return None
        if not args.a:
            raise UsageError("%overseer_diff compares two runs: give them, e.g. %overseer_diff first second "
                             "(variables holding runs, or run ids; %overseer_diff --help says more)")
        return self.notebook.diff(args.a, args.b)

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("run_id", metavar="RUN_ID", help="the id of a past run (see %%overseer_runs)")
    @argument("--graph", metavar="NAME", help="the graph whose handlers to use (default: the one matching)")
    def overseer_resume(self, line):
        """Resume a past run from the journal: run only what did not finish.

        The handlers are those bound to the notebook graph equal to the run's graph.

        Example:

            %overseer_resume 20261127-191000-3fa2c1
        """
        args = parse_argstring(self.overseer_resume, line)
        return self._show(self.notebook.resume(args.run_id, graph_name=args.graph), "overseer_resume")

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("--engines", type=int, metavar="N", help="start a local cluster of N engines")
    @argument("--profile", metavar="P", help="connect to the running cluster of this profile")
    @argument("--cluster-id", metavar="ID", help="connect to the running cluster with this id")
    @argument("--url-file", metavar="F", help="connect with this ipcontroller-client.json")
    @argument("--stop", action="store_true", help="stop the local cluster (or forget a connected one)")
    def overseer_cluster(self, line):
        """Choose the cluster later runs use; with no option, show the one in use.

        Example:

            %overseer_cluster --engines 4
            %overseer_cluster --profile mpi
            %overseer_cluster --stop
        """
        a = parse_argstring(self.overseer_cluster, line)
        where = dict(engines=a.engines, profile=a.profile, cluster_id=a.cluster_id, url_file=a.url_file)
        where = {k: v for k, v in where.items() if v is not None}
        if a.stop and where:
            raise UsageError(f"--stop takes no other option, got --{', --'.join(where)}; stop first, then choose")
        print(choose_cluster(stop=a.stop, default_engines=self.settings.engines or os.cpu_count() or 1, **where))

    @line_magic
    @_usage_errors
    @magic_arguments()
    @argument("--prune", action="store_true", help="delete stored results (of runs not in progress)")
    @argument("--older-than", metavar="AGE", help="with --prune: runs whose newest result is older, e.g. 7d, 12h, 30m")
    @argument("--keep-last", type=int, metavar="N", help="with --prune: keep the newest N runs")
    @argument("--run", nargs="+", metavar="RUN_ID", help="with --prune: these runs")
    @argument("--dry-run", action="store_true", help="with --prune: only say what would be deleted")
    def overseer_store(self, line):
        """Show what the result store holds per run; with --prune, delete old runs' results.

        Results of a run in progress are never deleted; pruned runs stay in the
        journal (ov.store_usage(), ov.prune()).

        Example:

            %overseer_store
            %overseer_store --prune --older-than 7d --dry-run
            %overseer_store --prune --keep-last 5
        """
        a = parse_argstring(self.overseer_store, line)
        chosen = {k: v for k, v in (("--older-than", a.older_than), ("--keep-last", a.keep_last),
                                     ("--run", a.run), ("--dry-run", a.dry_run or None)) if v is not None}
        if not a.prune:
            if chosen:
                raise UsageError(f"{', '.join(chosen)} go with --prune, e.g. %overseer_store --prune --older-than 7d")
            return self.notebook.journal("store_usage")()
        return self.notebook.journal("prune")(a.run, older_than=a.older_than, keep_last=a.keep_last, dry_run=a.dry_run)

    # -- helpers ---------------------------------------------------------------------
    def _run_cell(self, cell: str) -> None:
        """Run ``cell`` as a cell of its own; ``UsageError`` if it raised (its traceback is shown)."""
        hook = self.shell.displayhook
        outer = hook.exec_result
        try:
            result = self.shell.run_cell(cell, store_history=False)
        finally:
            hook.exec_result = outer  # the inner run resets it; the outer cell still needs it
        if not result.success:
            error = result.error_before_exec or result.error_in_exec
            raise UsageError(
                f"the cell raised {type(error).__name__}: {error}; no handler was bound. "
                "Fix the cell and run it again."
            )

    def _show(self, run, magic: str, *, wait: bool = False):
        """Display ``run`` once (by IPython's output when it is the cell's value), wait, return it."""
        if not _is_cell_output(self.shell, magic):
            display(run)
        return run.wait() if wait else run


def _is_cell_output(shell, magic: str) -> bool:
    """True if the value of line magic ``magic`` is the current cell's output.

    IPython then displays it; displaying it here as well would show it twice.
    """
    result = getattr(shell.displayhook, "exec_result", None)
    info = getattr(result, "info", None)
    if info is None or info.silent or shell.ast_node_interactivity == "none":
        return False
    try:
        source = shell.transform_cell(info.raw_cell)
        tree = ast.parse(source)
    except SyntaxError:
        return False
    last = tree.body[-1] if tree.body else None
    call = last.value if isinstance(last, ast.Expr) else None
    return (
        isinstance(call, ast.Call)
        and getattr(call.func, "attr", "") == "run_line_magic"
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and call.args[0].value == magic
        and not shell.displayhook.semicolon_at_end_of_expression(source)
    )


def load(ipython) -> None:
    """Register the magics and an ``Overseer`` configurable on ``ipython`` (again: replace them)."""
    unload(ipython)
    settings = Overseer(parent=ipython)  # reads c.Overseer.* from the shell's config
    ipython.configurables.append(settings)  # so %config Overseer.x = y reaches it
    set_defaults(settings)
    ipython.register_magics(OverseerMagics(ipython, settings))
    if settings.prestart_cluster and os.environ.get("OVERSEER_NB_PRESTART", "1") != "0":
        prestart()


def unload(ipython) -> None:
    """Remove what :func:`load` added: the magics, the configurable, the defaults."""
    magics = ipython.magics_manager.registry.pop(OverseerMagics.__name__, None)
    if magics is None:
        return
    for kind, names in magics.magics.items():
        table = ipython.magics_manager.magics[kind]
        for name in names:
            if getattr(table.get(name), "__self__", None) is magics:
                del table[name]
    if magics.settings in ipython.configurables:
        ipython.configurables.remove(magics.settings)
    if defaults() is magics.settings:
        set_defaults(None)
