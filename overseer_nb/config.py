"""Configuration, the Jupyter way: ``c.Overseer.engines = 4``, ``%config Overseer.max_faults = 3``."""

from __future__ import annotations

from traitlets import Bool, Float, Int, Unicode, Union, default
from traitlets.config import Configurable

from .options import RunOptions

__all__ = ["Overseer", "defaults", "set_defaults"]


class Overseer(Configurable):
    """Options of overseer_nb; each is read when a run or the local cluster starts."""

    engines = Int(
        0, help="Engines of the local cluster overseer_nb starts (0: one per CPU)."
    ).tag(config=True)
    retries = Int(0, help="Automatic retries of a job after an ordinary exception.").tag(config=True)
    retry_delay = Float(1.0, help="Seconds before an automatic retry.").tag(config=True)
    timeout = Union(
        [Float(), Unicode()],
        allow_none=True,
        default_value=None,
        help="Seconds a job may run before it is interrupted and failed (None: no limit).",
    ).tag(config=True)
    max_faults = Int(5, help="Faults (ov.fault) after which a job fails.").tag(config=True)
    fault_backoff = Float(
        1.0, help="Seconds of backoff after a job's first fault; doubles with each fault."
    ).tag(config=True)
    fault_backoff_max = Float(60.0, help="Cap of the fault backoff, in seconds.").tag(config=True)
    max_engine_losses = Int(
        3, help="Engines a job may lose (engine died mid-job) before it fails."
    ).tag(config=True)
    kill_grace = Float(
        5.0, help="Seconds between interrupting a job (timeout, cancel) and killing its engine."
    ).tag(config=True)
    max_result_bytes = Int(
        0, help="Largest result (its pickled size) a job may return, in bytes; 0: no cap."
    ).tag(config=True)
    max_output_chars = Int(
        1_000_000,
        help="Characters of each attempt's stdout and of its stderr kept on the engine "
        "(the first and last halves, with a marker saying how much was left out).",
    ).tag(config=True)
    journal = Unicode(
        "",
        help="Path of the SQLite journal ('' : the user's Jupyter data directory; "
        "':memory:' for none on disk; 'off' for no journal). The OVERSEER_NB_JOURNAL "
        "environment variable wins.",
    ).tag(config=True)
    journal_max_result_bytes = Int(
        16 * 2**20,
        help="Largest inline result (a small one, or any result relayed through the kernel "
        "when the engines share no store) the journal keeps, in bytes; a larger one is marked "
        "not stored (resume re-runs that job only if a child that must run needs it). Results "
        "in the result store are recorded by where they are, whatever their size.",
    ).tag(config=True)
    cache = Bool(
        False,
        help="Reuse the result of an earlier finished job whose fingerprint (handler code, the "
        "globals it reads, args, inputs' contents) is the same, from any run in the journal "
        "(ov.run(cache=...) and %overseer_run --cache win).",
    ).tag(config=True)
    eager = Bool(
        True,
        help="On a cluster whose engines share the result store, send each job as soon as its "
        "parents are sent, with ipyparallel's after= on their tasks, so the cluster starts it "
        "the moment they end without waiting for the kernel (ov.run(eager=...) wins).",
    ).tag(config=True)
    store = Unicode(
        "",
        help="Folder of the result store ('' : a folder 'results' beside the journal). "
        "store= of ov.run and the OVERSEER_NB_STORE environment variable win.",
    ).tag(config=True)
    store_inline_bytes = Int(
        64 * 2**10,
        help="Results up to this many bytes pickled (with no large buffers) travel with the "
        "job's report instead of through the store.",
    ).tag(config=True)
    follow_input_bytes = Int(
        64 * 2**20,
        help="A job whose biggest input is at least this big (bytes) waits behind one job on the "
        "engine that holds that input rather than read it from the store on another engine; "
        "smaller ones go there only if that engine is free.",
    ).tag(config=True)
    engine_memory_bytes = Int(
        4 * 2**30,
        help="Bytes of stored results each engine keeps in memory for children that run "
        "there; the oldest leave first (they stay in the store).",
    ).tag(config=True)
    journal_max_output_chars = Int(
        64 * 2**10,
        help="Characters of each attempt's stdout and of its stderr the journal keeps "
        "(the first and last halves, with a marker saying how much was left out).",
    ).tag(config=True)
    prestart_cluster = Bool(
        True,
        help="Start the local cluster in the background when the extension loads (if no "
        "cluster was chosen), so the first run starts at once. The environment variable "
        "OVERSEER_NB_PRESTART=0 turns it off.",
    ).tag(config=True)
    update_interval = Float(
        0.1, help="Seconds between updates of a live graph widget (at most ~10 a second)."
    ).tag(config=True)

    @default("timeout")
    def _timeout_default(self):
        return None

    def run_options(self) -> RunOptions:
        """The :class:`RunOptions` these settings give."""
        timeout = self.timeout
        if isinstance(timeout, str):
            timeout = None if timeout.strip().lower() in ("", "none") else float(timeout)
        return RunOptions(
            retries=self.retries,
            retry_delay=self.retry_delay,
            timeout=timeout,
            max_faults=self.max_faults,
            fault_backoff=self.fault_backoff,
            fault_backoff_max=self.fault_backoff_max,
            max_engine_losses=self.max_engine_losses,
            kill_grace=self.kill_grace,
            max_result_bytes=self.max_result_bytes or None,
            max_output_chars=self.max_output_chars,
            cache=self.cache,
            eager=self.eager,
        )


_current: list[Overseer] = []


def defaults() -> Overseer:
    """The settings in force (the IPython extension's, or plain defaults)."""
    if not _current:
        _current.append(Overseer())
    return _current[-1]


def set_defaults(settings: Overseer | None) -> None:
    """Make ``settings`` the ones in force (``None``: back to plain defaults)."""
    _current.clear()
    if settings is not None:
        _current.append(settings)
