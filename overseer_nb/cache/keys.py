"""A job's fingerprint from its parts, and the one line saying why it ran or was reused.

The parts: the handler's (:class:`~.fingerprint.HandlerPrint`), each run
argument's digest, each input's content digest (so a parent whose code
changed but whose result did not leaves its children's fingerprints as they
were), and the item index of an item of a mapped type. The fingerprint is a
digest of all of them; the parts are kept too, so :func:`why_it_ran` can name
what changed since the job last ran.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..records import ItemOf, ItemsOf
from .fingerprint import HandlerPrint, Uncacheable, digest_bytes

__all__ = ["job_parts", "fingerprint_of", "input_digest", "why_it_ran"]


def input_digest(data: Any) -> str:
    """The content digest of an input as the machine hands it over (a pickle, a stored result, an item, a list)."""
    if isinstance(data, ItemOf):  # the item's own content when known: an item moved in the list stays cached
        return data.digest or digest_bytes(f"{input_digest(data.data)}[{data.index}]".encode())
    if isinstance(data, ItemsOf):
        return digest_bytes(json.dumps([input_digest(d) for d in data.items]).encode())
    if data is None:
        return "none"
    if isinstance(data, (bytes, bytearray)):
        return digest_bytes(bytes(data))
    digest = getattr(data, "digest", "")
    if not digest:
        raise Uncacheable("an input's content has no digest (it was stored without the cache on)")
    return digest


def job_parts(handler: HandlerPrint, args: dict[str, str], inputs: dict[str, str]) -> dict:
    """Everything a job's result depends on, as JSON-ready data (an item's: through its input)."""
    return {"handler": handler.to_json(), "args": args, "inputs": inputs}


def fingerprint_of(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]


def why_it_ran(job_type: str, old: dict | None, new: dict) -> str:
    """One line: what differs between the ``old`` parts of this job (its last run) and the ``new``."""
    if old is None:
        return "ran: no earlier result"
    oh, nh = old.get("handler", {}), new["handler"]
    for name, digest in nh["code"].items():
        if name not in oh.get("code", {}):
            return f"ran: the handler of {job_type!r} changed (it now calls {name!r})"
        if oh["code"][name] != digest:
            what = "its code" if name in ("process", "pre_process", "post_process") else f"the helper {name!r}"
            return f"ran: the handler of {job_type!r} changed ({what})"
    for name in oh.get("code", {}):
        if name not in nh["code"]:
            return f"ran: the handler of {job_type!r} changed (it no longer calls {name!r})"
    for name, digest in nh["globals"].items():
        if oh.get("globals", {}).get(name) != digest:
            return f"ran: the global {name} changed"
    for name, version in nh["modules"].items():
        if oh.get("modules", {}).get(name) != version:
            return f"ran: the module {name} is now version {version}"
    changed = sorted(k for k in set(new["args"]) | set(old.get("args", {})) if new["args"].get(k) != old.get("args", {}).get(k))
    if changed:
        return f"ran: args changed ({', '.join(changed)})"
    for parent, digest in new["inputs"].items():
        if old.get("inputs", {}).get(parent) != digest:
            return f"ran: input {parent!r} changed"
    return "ran: its earlier result is not available (failed, or gone from the store)"
