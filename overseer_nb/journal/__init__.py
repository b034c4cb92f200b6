"""The run journal: every run's transitions, attempts and results in SQLite.

``ov.run`` attaches the journal to each run before it starts (``journal=False``
turns it off). After a kernel restart, :func:`runs` lists past runs,
:func:`load_run` gives one back as a :class:`~overseer_nb.running.Run` with its
last recorded states, and ``run.resume(handlers)`` runs what did not finish.
Where the journal lives: :func:`journal_location`; docs/journal.md.
"""

from .file import Journal, journal_location, open_journal
from .listing import backup, jobs_with_status, runs
from .loading import load_run
from .recorder import Recorder, attach
from .tables import JobStatusRow, RunInfo

__all__ = [
    "runs",
    "load_run",
    "jobs_with_status",
    "backup",
    "attach",
    "journal_location",
    "open_journal",
    "RunInfo",
    "JobStatusRow",
    "Journal",
    "Recorder",
]
