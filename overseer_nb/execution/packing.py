"""An attempt's call sent as one pickle: cheap to send for the kernel, cheap to read for the engine.

ipyparallel "cans" each argument of a task (walks every dict and list, and
sends a function by its code), which costs the kernel about 0.1 ms per task;
one ``bytes`` argument and a function pickled once cost it 0.01 ms. A call
holding a big input (results relayed through the kernel) goes as keyword
arguments instead, so its bytes travel as buffers, without a copy.
"""

from __future__ import annotations

import pickle
from typing import Any

from .engine import AttemptReport, run_attempt

__all__ = ["run_packed", "pack_call", "unpack_report", "PACK_LIMIT"]

PACK_LIMIT = 1 << 20  # a call pickled larger than this goes as keyword arguments


def run_packed(blob: bytes) -> AttemptReport | bytes:
    """On the engine: :func:`~overseer_nb.execution.engine.run_attempt` of the call pickled in ``blob``.

    Its report comes back pickled too (:func:`unpack_report` reads it), unless
    it holds a big result, which then travels as a buffer.
    """
    report = run_attempt(**pickle.loads(blob))
    if len(report["result"] or b"") > PACK_LIMIT:
        return report
    return pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_report(reply: Any) -> AttemptReport:
    """The report a task sent back, pickled (:func:`run_packed`) or as it is."""
    return pickle.loads(reply) if isinstance(reply, bytes) else reply


_prepickled: list[Any] = []


def pack_call(call: dict[str, Any]) -> tuple[Any, bytes] | None:
    """(the function to apply, its one argument) for ``call``; None if it is too big to pack."""
    blob = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
    if len(blob) > PACK_LIMIT:
        return None
    if not _prepickled:
        from ipyparallel.serialize import PrePickled

        _prepickled.append(PrePickled(run_packed))
    return _prepickled[0], blob
