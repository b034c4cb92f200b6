"""``ov.diff``: what differs between two runs, read from the runs and the journal.

A run is given as a :class:`~overseer_nb.running.Run` (live, or loaded), a run
id (or a unique prefix; loaded from the journal) or a row of ``ov.runs()``.
Each run's handler code is what the journal recorded when it ran
(:mod:`.code`); a run without a journal compares its handlers as they are now.
The comparison and its table are :func:`overseer_nb.display.run_diff`.
"""

from __future__ import annotations

from typing import Any

from ..display import RunDiff, run_diff
from ..errors import RunError
from ..running import Run
from .code import run_code
from .file import Journal
from .loading import load_run, reader
from .recorder import Recorder

__all__ = ["diff"]


def _resolve(ref: Any, which: str, journal: Any) -> tuple[Run, Journal | None]:
    if isinstance(ref, Run):
        recorder = ref.recorder
        return ref, recorder.journal if isinstance(recorder, Recorder) else None
    ref = getattr(ref, "run_id", ref)  # a RunInfo row of ov.runs()
    if not isinstance(ref, str):
        raise RunError(
            f"run {which} of ov.diff is {type(ref).__name__} {ref!r:.60}, not a run; give a Run "
            "(ov.last_run(), a variable holding one), a run id (ov.runs() lists them) or a row of ov.runs()"
        )
    found = load_run(ref, journal)  # RunError naming the closest ids
    recorder = found.recorder
    return found, recorder.journal if isinstance(recorder, Recorder) else reader(journal)


def diff(run_a: Any, run_b: Any, *, journal: Any = None) -> RunDiff:
    """What differs between ``run_a`` (A) and ``run_b`` (B): args, options, graph, handler code, each job.

    run_a, run_b: a :class:`Run`, a run id (or a unique prefix of one) or a
    row of ``ov.runs()``; ids are read from ``journal`` (see
    :func:`~overseer_nb.journal.journal_location`). Handler code is compared by
    the digest the journal recorded when each run ran (with a unified diff of
    the sources when both are known); a job type whose code is not known in
    one of the runs says "code unknown". Returns a
    :class:`~overseer_nb.display.RunDiff`: it prints as text and shows as a table in a notebook.
    Raises :class:`~overseer_nb.errors.RunError` for an unknown run id or a value that is not a run.
    """
    a, journal_a = _resolve(run_a, "A", journal)
    b, journal_b = _resolve(run_b, "B", journal)
    (code_a, from_a), (code_b, from_b) = run_code(a, journal_a), run_code(b, journal_b)
    notes = tuple(f"{name}: not in a journal, compared by its handlers as they are now"
                  for name, source in (("A", from_a), ("B", from_b)) if source == "handlers")
    return run_diff(a, b, code_a, code_b, notes)
