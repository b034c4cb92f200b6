"""Binding a cell's functions to the job types of a graph (``%%overseer_handlers``).

A top-level function, or lifecycle dict, defined in the cell becomes the
handler of the job type with its name, ``-`` and ``.`` in the job type read
as ``_`` (``def process_1a(job)`` handles ``process-1a``). A function marked
``@ov.handler("job-type")`` is bound to that job type whatever its name.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphError, InvalidHandlerError
from ..graph import JobGraph
from ..handlers import lifecycle, marked_job_type

__all__ = ["python_name", "defined_names", "bind_handlers", "Binding"]


def python_name(job_type: str) -> str:
    """The function name that handles ``job_type``: ``process-1a`` -> ``process_1a``."""
    return job_type.replace("-", "_").replace(".", "_")


def defined_names(source: str) -> list[str]:
    """Names the top level of ``source`` (Python code) binds, in order.

    Functions, classes, assignments and imports, also inside top-level
    ``if``/``try``/``with``/``for`` blocks; not names inside functions.
    Source that does not parse gives no names.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: dict[str, None] = {}

    def visit(statements: Iterable[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names[node.name] = None
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            names[sub.id] = None
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    names[(alias.asname or alias.name).split(".")[0]] = None
            else:
                for block in ("body", "orelse", "finalbody", "handlers"):
                    visit(getattr(node, block, []))

    visit(tree.body)
    return list(names)


@dataclass
class Binding:
    """What one ``%%overseer_handlers`` cell bound; ``str()`` is the line it prints.

    bound: job type -> the name of the function or dict now handling it.
    missing: job types of the graph that still have no handler.
    """

    graph_name: str
    bound: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.bound:
            parts = [t if name == t else f"{t} ({name})" for t, name in self.bound.items()]
            head = f"{self.graph_name}: bound {', '.join(parts)}"
        else:
            head = (
                f"{self.graph_name}: this cell bound no handler (name a function after its job "
                "type, process-1a -> process_1a, or mark it @ov.handler('job-type'))"
            )
        if self.missing:
            return f"{head}; no handler yet for {', '.join(self.missing)}."
        return f"{head}; every job type has a handler."


def bind_handlers(
    graph: JobGraph,
    definitions: Mapping[str, Any],
    handlers: MutableMapping[str, Any],
    *,
    graph_name: str = "graph",
) -> Binding:
    """Bind the handlers among ``definitions`` (name -> value) into ``handlers``.

    ``handlers`` is updated in place, so a run holding it uses the new
    handlers at its next retry. Everything is checked before anything is
    bound: a mark naming no job type of the graph, one job type bound twice,
    a function name matching two job types, or a handler of the wrong shape
    raise :class:`GraphError` / :class:`InvalidHandlerError` and bind nothing.
    """
    by_python: dict[str, list[str]] = {}
    for job_type in graph:
        by_python.setdefault(python_name(job_type), []).append(job_type)
    chosen: dict[str, tuple[str, Any]] = {}
    for name, value in definitions.items():
        job_type = _job_type_for(name, value, graph, by_python, graph_name)
        if job_type is None:
            continue
        if job_type in chosen and chosen[job_type][1] is not value:
            raise InvalidHandlerError(
                f"job type {job_type!r} of {graph_name} is bound twice in this cell, by "
                f"{chosen[job_type][0]} and by {name}; keep one of them"
            )
        chosen[job_type] = (name, value)
    for job_type, (_, value) in chosen.items():
        lifecycle(job_type, value)  # raises InvalidHandlerError naming the job type
    for job_type, (_, value) in chosen.items():
        handlers[job_type] = value
    return Binding(
        graph_name,
        bound={t: chosen[t][0] for t in graph if t in chosen},
        missing=[t for t in graph if t not in handlers],
    )


def _job_type_for(name: str, value: Any, graph: JobGraph, by_python: dict, graph_name: str) -> str | None:
    marked = marked_job_type(value)
    if marked is not None:
        if marked not in graph:
            close = difflib.get_close_matches(marked, list(graph), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise GraphError(
                f"{name} is marked @ov.handler({marked!r}), but {marked!r} is not a job type of "
                f"{graph_name}; {hint}job types: {', '.join(graph)}"
            )
        return marked
    if not (callable(value) or isinstance(value, Mapping)):
        return None
    if name in graph:
        return name
    matches = by_python.get(name, [])
    if len(matches) > 1:
        raise GraphError(
            f"{name} matches job types {', '.join(map(repr, matches))} of {graph_name}; "
            f"mark it @ov.handler('job-type') to say which one it handles"
        )
    return matches[0] if matches else None
