"""Handlers: a function ``f(job)`` or a lifecycle mapping, and Overseer's harness."""

from __future__ import annotations

import difflib
import inspect
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    HandlerOptionError,
    InvalidHandlerError,
    MissingHandlerError,
    OptionError,
    UnknownHandlerError,
    UnknownOptionError,
)
from .graph import JobGraph
from .options import JOB_OPTION_NAMES, RunOptions

__all__ = [
    "STAGES",
    "Lifecycle",
    "lifecycle",
    "harness",
    "handler",
    "validate_graph_handlers",
    "current_handler",
]

STAGES = ("pre_process", "process", "post_process")
_ARITY = {"pre_process": 1, "process": 1, "post_process": 2}
_MARK = "__overseer__"


def identity_pre_process(job):
    """The pre_process stage of a handler that has none: the job unchanged."""
    return job


def identity_post_process(job, result):
    """The post_process stage of a handler that has none: the result unchanged."""
    return result


@dataclass(frozen=True)
class Lifecycle:
    """A handler in its full form: three stages and the job type's own options."""

    process: Callable[[Any], Any]
    pre_process: Callable[[Any], Any] | None = None
    post_process: Callable[[Any, Any], Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


_checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # function -> its Lifecycle


def lifecycle(job_type: str, handler: Any) -> Lifecycle:
    """Normalise ``handler`` of ``job_type`` to a :class:`Lifecycle`.

    Raises :class:`InvalidHandlerError` naming the job type and what is wrong.
    A plain function is checked once (runs normalise it for every attempt).
    """
    if isinstance(handler, Lifecycle):
        return handler
    if inspect.isfunction(handler):
        life = _checked.get(handler)
        if life is None:
            life = _checked[handler] = _lifecycle(job_type, handler)
        return life
    return _lifecycle(job_type, handler)


def _lifecycle(job_type: str, handler: Any) -> Lifecycle:
    if isinstance(handler, Mapping):
        unknown = sorted(set(handler) - set(STAGES) - set(JOB_OPTION_NAMES))
        if unknown:
            raise InvalidHandlerError(
                f"the handler of {job_type!r} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(STAGES + JOB_OPTION_NAMES)}"
            )
        if "process" not in handler:
            raise InvalidHandlerError(
                f"the lifecycle handler of {job_type!r} has no 'process' stage; "
                "add 'process': f(job) (pre_process and post_process are optional)"
            )
        stages = {s: handler.get(s) for s in STAGES}
        options = {k: handler[k] for k in JOB_OPTION_NAMES if k in handler}
    elif inspect.isclass(handler):
        raise InvalidHandlerError(
            f"the handler of {job_type!r} is the class {handler.__name__}: calling it would make a "
            f"{handler.__name__} object, not run the job. Give a function f(job), or a method of an "
            f"object (e.g. {handler.__name__}().run)"
        )
    elif callable(handler):
        stages = {"process": handler, "pre_process": None, "post_process": None}
        options = dict(getattr(handler, _MARK, {}).get("options", {}))
    else:
        raise InvalidHandlerError(
            f"the handler of {job_type!r} is a {type(handler).__name__} ({handler!r:.60}); "
            "a handler is a function f(job) or a dict with 'process' "
            "(and optionally 'pre_process', 'post_process')"
        )
    for stage, fn in stages.items():
        if fn is None:
            continue
        if not callable(fn) or inspect.isclass(fn):
            what = f"the class {fn.__name__}" if inspect.isclass(fn) else f"a {type(fn).__name__}"
            raise InvalidHandlerError(
                f"stage {stage!r} of the handler of {job_type!r} is {what}, not a function"
            )
        _check_kind(job_type, stage, fn, whole=not isinstance(handler, Mapping))
        _check_arity(job_type, stage, fn)
    _check_options(job_type, options)
    return Lifecycle(options=options, **stages)


def _check_kind(job_type: str, stage: str, fn: Callable, *, whole: bool) -> None:
    """Refuse async and generator functions: an engine would get a coroutine or a generator back."""
    # the function itself, and for an object its class's __call__
    targets = (fn, inspect.getattr_static(type(fn), "__call__", None))
    name = getattr(fn, "__name__", type(fn).__name__)
    what = f"stage {stage!r} of the handler of {job_type!r} ({name})"
    if whole:
        what = f"the handler of {job_type!r} ({name})"
    if any(inspect.iscoroutinefunction(t) for t in targets):
        raise InvalidHandlerError(
            f"{what} is an async def function: called on an engine it returns a coroutine that never "
            "runs. Define it with def; inside it, asyncio.run(...) runs async code"
        )
    if any(inspect.isasyncgenfunction(t) for t in targets):
        raise InvalidHandlerError(
            f"{what} is an async generator function (async def with yield): it would return a generator, "
            "not a result. Define it with def and return the results, e.g. as a list"
        )
    if any(inspect.isgeneratorfunction(t) for t in targets):
        raise InvalidHandlerError(
            f"{what} is a generator function (it uses yield): it would return a generator, not its "
            "results. Return them instead, e.g. return list(...)"
        )


def _check_options(job_type: str, options: dict[str, Any]) -> None:
    """Check a handler's own options with the run options' own rules (types and ranges)."""
    if not options:
        return
    try:
        RunOptions().with_changes(**options)
    except OptionError as exc:
        raise HandlerOptionError(f"the handler of {job_type!r} has a bad option: {exc}") from None


def _check_arity(job_type: str, stage: str, fn: Callable) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and some C callables: nothing to check
    try:
        sig.bind(*range(_ARITY[stage]))
    except TypeError:
        wanted = "(job, result)" if stage == "post_process" else "(job)"
        name = getattr(fn, "__name__", stage)
        raise InvalidHandlerError(
            f"{stage} of {job_type!r} ({name}{sig}) cannot be called as {stage}{wanted}; "
            f"define it as def {name}{wanted}: ..."
        ) from None


def harness(handler: Any, wrapper: Callable[[Callable], Callable], stage: str = "process") -> dict:
    """Wrap one stage of ``handler`` with ``wrapper``, as Overseer's harness does.

    ``wrapper(f)`` returns a function with the same signature as ``f``. A stage
    the handler lacks is given as an identity function first, so a harness on
    ``pre_process`` or ``post_process`` always applies. Returns a lifecycle dict.
    """
    if stage not in STAGES:
        raise OptionError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    life = lifecycle("<harnessed>", handler)
    stages = {
        "pre_process": life.pre_process or identity_pre_process,
        "process": life.process,
        "post_process": life.post_process or identity_post_process,
    }
    stages[stage] = wrapper(stages[stage])
    if not callable(stages[stage]):
        raise InvalidHandlerError(f"the harness wrapper returned {stages[stage]!r}, not a function")
    return {**stages, **life.options}


def handler(job_type: str | Callable | None = None, **options: Any) -> Callable:
    """Mark a function as the handler of ``job_type``, with per-job options.

    ``@ov.handler("process-1a", retries=2, timeout=60)``. Options: retries,
    retry_delay, timeout, max_faults, max_parallel (most jobs of this type out at
    once), cache (False: always run, for jobs with side effects).
    ``%%overseer_handlers`` binds marked functions by their job type; ``ov.run``
    reads their options.
    """
    unknown = sorted(set(options) - set(JOB_OPTION_NAMES))
    if unknown:
        raise UnknownOptionError(
            f"unknown handler option(s) {', '.join(unknown)}; valid: {', '.join(JOB_OPTION_NAMES)}"
        )

    def mark(fn: Callable) -> Callable:
        setattr(fn, _MARK, {"job_type": name, "options": options})
        return fn

    if callable(job_type):  # bare @ov.handler
        name = None
        return mark(job_type)
    name = job_type
    return mark


def marked_job_type(fn: Any) -> str | None:
    """The job type ``fn`` was bound to with :func:`handler`, if any."""
    return getattr(fn, _MARK, {}).get("job_type") if callable(fn) else None


def validate_graph_handlers(graph: JobGraph | Mapping, handlers: Mapping[str, Any]) -> dict[str, Lifecycle]:
    """Check that every job type of ``graph`` has a usable handler.

    Returns job type -> :class:`Lifecycle`. Raises :class:`MissingHandlerError`
    naming every job type without one, or :class:`InvalidHandlerError` naming a
    handler that is not a function or lifecycle mapping.
    """
    graph = graph if isinstance(graph, JobGraph) else JobGraph(graph)
    if not isinstance(handlers, Mapping):
        raise InvalidHandlerError(
            f"handlers must be a dict of job type -> handler, got {type(handlers).__name__}"
        )
    missing = [job for job in graph if job not in handlers]
    unknown = [key for key in handlers if key not in graph]
    if unknown:
        raise _unknown_keys(unknown, graph, missing)
    if missing:
        raise MissingHandlerError(missing)
    return {job: lifecycle(job, handlers[job]) for job in graph}


def _unknown_keys(unknown: list[Any], graph: JobGraph, missing: list[str]) -> UnknownHandlerError:
    """The error naming handler keys that are not job types, each with the closest job type."""
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), [job for job in graph if job in missing] or list(graph), n=1)
        parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    many = len(unknown) > 1
    lacking = ""
    if missing:
        lacking = f"; {', '.join(map(repr, missing))} {'have' if len(missing) > 1 else 'has'} no handler"
    return UnknownHandlerError(
        f"handler key{'s' if many else ''} {', '.join(parts)} {'are not job types' if many else 'is not a job type'} "
        f"of the graph; its job types: {', '.join(map(repr, graph))}{lacking}. Key each handler by its job type"
    )


def current_handler(fn: Any) -> Any:
    """The newest definition of a notebook function.

    A function defined at the top level of ``__main__`` (a notebook cell) and
    later redefined under the same name resolves to the new one, so a retry runs
    the code as it is now.
    """
    if not inspect.isfunction(fn) or fn.__module__ != "__main__" or fn.__qualname__ != fn.__name__:
        return fn
    newer = fn.__globals__.get(fn.__name__)
    return newer if inspect.isfunction(newer) else fn


def current_lifecycle(job_type: str, handler: Any) -> Lifecycle:
    """:func:`lifecycle` of ``handler`` with each stage resolved by :func:`current_handler`."""
    if callable(handler) and not isinstance(handler, Mapping):
        handler = current_handler(handler)
    life = lifecycle(job_type, handler)
    return Lifecycle(
        process=current_handler(life.process),
        pre_process=current_handler(life.pre_process) if life.pre_process else None,
        post_process=current_handler(life.post_process) if life.post_process else None,
        options=life.options,
    )
