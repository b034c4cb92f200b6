"""The run journal: every run's transitions, attempts and results in SQLite.

``ov.run`` attaches the journal to each run before it starts (``journal=False``
turns it off). After a kernel restart, :func:`runs` lists past runs,
:func:`load_run` gives one back as a :class:`~overseer_nb.running.Run` with its
last recorded states, and ``run.resume(handlers)`` runs what did not finish.
Where the journal lives: :func:`journal_location`; docs/journal.md.
What the result store holds per run, and pruning it: :func:`store_usage`, :func:`prune`.
What differs between two runs (args, graph, handler code, outcomes): :func:`diff`.
"""

from .comparing import diff
from .file import Journal, journal_location, open_journal
from .listing import backup, jobs_with_status, runs
from .loading import load_run
from .recorder import Recorder, attach
from .storage import StoreRow, prune, result_store, store_usage
from .tables import JobStatusRow, RunInfo

__all__ = [
    "runs",
    "load_run",
    "diff",
    "jobs_with_status",
    "backup",
    "store_usage",
    "prune",
    "result_store",
    "StoreRow",
    "attach",
    "journal_location",
    "open_journal",
    "RunInfo",
    "JobStatusRow",
    "Journal",
    "Recorder",
]
