"""What a job's result depends on, as digests: its handler's code, the globals it reads, its args and inputs.

A handler's fingerprint follows its stages' code objects (bytecode, constants,
names, nested code), their defaults and closure values, the helper functions
they call and the globals they read, transitively through the namespace they
were defined in (a notebook's ``__main__``). An imported module counts by its
version, not its code; a function of an installed package by its module's
version. A value that cannot be pickled makes the job uncacheable
(:class:`Uncacheable` says which). Computed in the kernel, once per handler
object; nothing here runs a job or touches a file.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HandlerPrint", "Uncacheable", "handler_print", "digest_value", "digest_bytes", "digest_args",
           "module_version"]


class Uncacheable(Exception):
    """A value a handler depends on cannot be fingerprinted; ``str()`` says which and why."""


@dataclass(frozen=True)
class HandlerPrint:
    """A handler's fingerprint, part by part (names -> digests), so a change can be named.

    code: each function reached (the stages first) -> digest of its code;
    globals: each global value read -> digest; modules: module -> version.
    """

    code: dict[str, str] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"code": self.code, "globals": self.globals, "modules": self.modules}


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def digest_value(value: Any) -> str:
    """A digest of ``value``'s pickle; raises :class:`Uncacheable` if it cannot be pickled."""
    import cloudpickle

    try:
        return digest_bytes(cloudpickle.dumps(value, protocol=5))
    except Exception as exc:
        raise Uncacheable(f"{type(value).__name__} cannot be pickled ({exc})") from None


_versions: dict[str, str] = {}


def module_version(name: str) -> str:
    """The version of the distribution a top-level module ``name`` belongs to ('' if none is known)."""
    top = name.split(".")[0]
    if top not in _versions:
        module = sys.modules.get(top)
        version = getattr(module, "__version__", None)
        if not isinstance(version, str):
            try:
                from importlib import metadata

                version = metadata.version(top)
            except Exception:
                version = "" if top in sys.stdlib_module_names else f"file {getattr(module, '__file__', '')}"
        _versions[top] = version or f"python {sys.version.split()[0]}"
    return _versions[top]


def _is_installed(fn: Any) -> bool:
    """True for a function of an imported module (counted by version), not one defined in the notebook."""
    module = getattr(fn, "__module__", None)
    if module in (None, "__main__") or module.startswith("__"):
        return False
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None) or ""
    return bool(path) and ("site-packages" in path or "dist-packages" in path or module.split(".")[0] in
                           sys.stdlib_module_names or module.split(".")[0] == "overseer_nb")


def _code_digest(code: types.CodeType) -> str:
    """Bytecode, constants (nested code by its digest), names and argument layout; not line numbers."""
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode(),
             repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags & 0x0F)).encode()]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_digest(const).encode())
        else:
            parts.append(repr(const).encode())
    return digest_bytes(b"\0".join(parts))


def _names_read(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_read(const)
    return names


class _Walker:
    def __init__(self) -> None:
        self.code: dict[str, str] = {}
        self.globals: dict[str, str] = {}
        self.modules: dict[str, str] = {}
        self._seen: set[int] = set()

    def function(self, fn: Any, label: str) -> None:
        if id(fn) in self._seen:
            return
        self._seen.add(id(fn))
        target = inspect.unwrap(fn) if callable(fn) else fn
        if isinstance(target, (types.MethodType, functools_partial_type())):
            inner = getattr(target, "__func__", None) or getattr(target, "func", None)
            bound = getattr(target, "__self__", None)
            if bound is not None and not isinstance(bound, types.ModuleType):
                self.globals[f"{label}.__self__"] = digest_value(bound)
            for value in (getattr(target, "args", ()) or ()):
                self.globals[f"{label} argument"] = digest_value(value)
            if inner is not None:
                self.function(inner, label)
            return
        code = getattr(target, "__code__", None)
        if code is None:  # a builtin, a class, a callable object
            if _is_installed(target) or isinstance(target, types.BuiltinFunctionType):
                name = getattr(target, "__module__", "") or ""
                if name:
                    self.modules[name.split(".")[0]] = module_version(name)
                return
            self.globals[label] = digest_value(target)
            return
        if _is_installed(target):
            self.modules[target.__module__.split(".")[0]] = module_version(target.__module__)
            return
        self.code[label] = _code_digest(code)
        if target.__defaults__:
            self.globals[f"{label} defaults"] = digest_value(target.__defaults__)
        if target.__kwdefaults__:
            self.globals[f"{label} defaults"] = digest_value(target.__kwdefaults__)
        for name, cell in zip(code.co_freevars, target.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.value(value, f"{label}.{name}")
        namespace = getattr(target, "__globals__", {})
        for name in sorted(_names_read(code)):
            if name in namespace:
                self.value(namespace[name], name)

    def value(self, value: Any, label: str) -> None:
        if isinstance(value, types.ModuleType):
            self.modules[value.__name__.split(".")[0]] = module_version(value.__name__)
        elif isinstance(value, (types.FunctionType, types.MethodType)) or _is_partial(value):
            self.function(value, label)
        elif isinstance(value, type):
            if _is_installed(value):
                self.modules[value.__module__.split(".")[0]] = module_version(value.__module__)
            else:
                self.globals[label] = digest_value(value)
        else:
            try:
                self.globals[label] = digest_value(value)
            except Uncacheable as exc:
                raise Uncacheable(f"the value of {label!r} ({type(value).__name__}) cannot be fingerprinted: "
                                  f"{exc}") from None


def functools_partial_type() -> type:
    import functools

    return functools.partial


def _is_partial(value: Any) -> bool:
    return isinstance(value, functools_partial_type())


def handler_print(stages: Mapping[str, Callable | None]) -> HandlerPrint:
    """The fingerprint of a handler's ``stages`` (name -> function or None).

    Raises :class:`Uncacheable` naming what cannot be fingerprinted.
    """
    walker = _Walker()
    for stage, fn in stages.items():
        if fn is not None:
            walker.function(fn, stage)
    return HandlerPrint(walker.code, walker.globals, walker.modules)


def digest_args(args: Mapping[str, Any]) -> dict[str, str]:
    """Each run argument -> digest (so a changed argument can be named)."""
    found = {}
    for key in sorted(args, key=str):
        try:
            found[str(key)] = digest_value(args[key])
        except Uncacheable as exc:
            raise Uncacheable(f"the argument {key!r} cannot be fingerprinted: {exc}") from None
    return found

