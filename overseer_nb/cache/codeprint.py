"""One digest of a handler's code: its stages and the notebook functions they call, not the values they read.

What an attempt records as the code it ran with, so the job panel can say
that the handler changed since (a Retry runs the new code). The same code
digests as the cache's fingerprint (:mod:`.fingerprint`), without pickling
any global value: cheap enough for every attempt, and never uncacheable.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Iterable
from typing import Any

from .fingerprint import _code_digest, _is_installed, _is_partial, _names_read, digest_bytes

__all__ = ["code_digest", "code_files", "CodeDigests"]


def code_digest(stages: Iterable[Any]) -> str:
    """A digest of the code of ``stages`` (functions or None) and of the notebook functions they reach.

    Helpers are followed through closures and the globals the code reads;
    functions of installed packages and values other than functions do not count.
    """
    found: dict[str, str] = {}
    seen: set[int] = set()
    pending = [(f"stage{i}", fn) for i, fn in enumerate(stages) if fn is not None]
    while pending:
        label, fn = pending.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        target = inspect.unwrap(fn) if callable(fn) else fn
        inner = getattr(target, "__func__", None) or (target.func if _is_partial(target) else None)
        if inner is not None:
            pending.append((label, inner))
            continue
        code = getattr(target, "__code__", None)
        if not isinstance(code, types.CodeType) or _is_installed(target):
            continue
        found[label] = _code_digest(code)
        values = [cell.cell_contents for cell in (target.__closure__ or ()) if _filled(cell)]
        namespace = getattr(target, "__globals__", {})
        values += [namespace[name] for name in sorted(_names_read(code)) if name in namespace]
        pending.extend((f"{label}>{getattr(v, '__qualname__', '?')}", v) for v in values
                       if isinstance(v, (types.FunctionType, types.MethodType)) or _is_partial(v))
    return digest_bytes(repr(sorted(found.items())).encode())


def code_files(stages: Iterable[Any]) -> dict[tuple[str, int], str]:
    """Where the code ``stages`` may run was defined: ``(name, first line) -> file name``.

    Every function reached from the stages (closures, the globals their code
    reads, the functions and methods of notebook classes and of modules that
    are not installed), and the code nested in them (comprehensions, inner
    functions). An engine's frame of code pickled by value names only its
    function and first line; this says which file (or cell) it was. A key
    two files share is left out.
    """
    found: dict[tuple[str, int], str | None] = {}
    seen: set[int] = set()
    pending = [fn for fn in stages if fn is not None]
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, types.ModuleType):
            if not _installed_module(value):
                pending.extend(v for v in vars(value).values() if isinstance(v, (types.FunctionType, type)))
            continue
        if isinstance(value, type):
            if not _is_installed(value):
                pending.extend(v for v in vars(value).values() if callable(v) or isinstance(v, (classmethod, staticmethod)))
            continue
        target = inspect.unwrap(value) if callable(value) else value
        inner = getattr(target, "__func__", None) or (target.func if _is_partial(target) else None)
        if inner is not None:
            pending.append(inner)
            continue
        code = getattr(target, "__code__", None)
        if not isinstance(code, types.CodeType) or _is_installed(target):
            continue
        for nested in _codes(code):
            key = (nested.co_name, nested.co_firstlineno)
            found[key] = nested.co_filename if found.get(key, nested.co_filename) == nested.co_filename else None
        pending.extend(cell.cell_contents for cell in (target.__closure__ or ()) if _filled(cell))
        namespace = getattr(target, "__globals__", {})
        pending.extend(namespace[name] for name in sorted(_names_read(code)) if name in namespace)
    return {key: name for key, name in found.items() if name is not None}


def _installed_module(module: types.ModuleType) -> bool:
    """A module of an installed package or the standard library (its code is not the user's)."""
    path = getattr(module, "__file__", None) or ""
    top = module.__name__.split(".")[0]
    return (not path or "site-packages" in path or "dist-packages" in path or top in sys.stdlib_module_names
            or top == "overseer_nb")


def _codes(code: types.CodeType) -> list[types.CodeType]:
    found, pending = [], [code]
    while pending:
        co = pending.pop()
        found.append(co)
        pending.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


class CodeDigests:
    """A run's :func:`code_digest` per handler, made once per set of stage functions until :meth:`forget`.

    Forgotten when the run ships its handlers anew (a retry): a helper
    redefined in a cell counts from then on, as it runs from then on.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[int, ...], tuple[tuple, str | None]] = {}
        self._stages: dict[str, tuple] = {}  # digest -> the stages: what an attempt sent with it ran
        self._files: dict[str, dict[tuple[str, int], str]] = {}

    def forget(self) -> None:
        self._known.clear()

    def files(self, digest: str | None) -> dict[tuple[str, int], str]:
        """:func:`code_files` of the stages sent with code ``digest`` ({} if none was)."""
        if digest not in self._stages:
            return {}
        if digest not in self._files:
            try:
                self._files[digest] = code_files(self._stages[digest])
            except Exception:
                self._files[digest] = {}
        return self._files[digest]

    def digest(self, stages: tuple) -> str | None:
        """The code digest of ``stages`` (None if it cannot be made)."""
        key = tuple(id(f) for f in stages)
        known = self._known.get(key)
        if known is None or any(a is not b for a, b in zip(known[0], stages, strict=True)):
            try:
                found: str | None = code_digest(stages)
            except Exception:  # an odd callable: the panel then says nothing about a change
                found = None
            known = self._known[key] = (stages, found)  # the functions are kept, so their ids stay theirs
            if found is not None:  # the same code from another cell: the newest is what is sent now
                self._stages[found] = stages
                self._files.pop(found, None)
        return known[1]

    def note(self, record: Any, attempt: int, stages: tuple) -> None:
        """Record on attempt ``attempt`` of ``record`` (a JobRecord) the code digest of the ``stages`` it is sent with."""
        for found in reversed(record.attempts):
            if found.number == attempt:
                found.code = self.digest(stages)
                return
