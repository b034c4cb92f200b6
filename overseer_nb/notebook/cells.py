"""The body of a ``%%overseer_graph`` cell: one job per line, or a Python expression.

Line syntax, one job per line::

    start:                      # a root: ``start:`` or just ``start``
    result1: start
    result2: start
    finish: result1, result2
    train: each grid, data      # mapped: one job per item of grid's result

Job types are words that may contain ``-`` and ``.`` (``process-1a``,
``load.users``); ``#`` starts a comment; blank lines are ignored. A body that
is not in this syntax but is a Python expression (``{"start": [], ...}``, or
the name of a dict or ``JobGraph``) is evaluated in the user namespace, as a
cell would be. Nothing else is ever evaluated.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from ..errors import GraphError, SelfDependencyError, UnknownParentError
from ..graph import Each, JobGraph

__all__ = ["parse_graph_text", "graph_from_cell"]

_NAME = r"\w[\w.\-]*"
_NAME_RE = re.compile(rf"{_NAME}\Z")
_LINE_RE = re.compile(rf"\s*({_NAME})\s*(?::(.*))?\Z")
_SYNTAX = "each line is 'job: parent, parent' (or 'job:' / 'job' for a job with no parents)"


def parse_graph_text(text: str, *, first_line: int = 1) -> JobGraph:
    """Parse the line syntax into a :class:`JobGraph`.

    first_line: the number of the text's first line in messages (a cell
    magic's body starts on line 2 of its cell).

    Raises :class:`GraphError` naming the line number and the bad text, and
    the graph's own errors (cycle, unknown parent with the closest name).
    """
    parents: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=first_line):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        job, job_parents = _parse_line(line, number)
        if job in parents:
            raise GraphError(
                f"line {number}: job {job!r} is already declared on line {where[job]}; "
                f"list all its parents on one line, e.g. '{job}: parent1, parent2'"
            )
        parents[job], where[job] = job_parents, number
    if not parents:
        raise GraphError(f"the graph is empty: {_SYNTAX}, e.g. 'start:' then 'finish: start'")
    try:
        return JobGraph(parents)
    except (UnknownParentError, SelfDependencyError) as exc:
        # Same error class, with the line the user has to fix.
        exc.args = (f"line {where[exc.job]}: {exc}",)
        raise


def _parse_line(line: str, number: int) -> tuple[str, list[Any]]:
    match = _LINE_RE.match(line)
    if match is None:
        head = line.split(":", 1)[0].strip()
        if head and not _NAME_RE.match(head):
            raise GraphError(
                f"line {number}: {head!r} is not a job type name: {_SYNTAX}; job types are "
                "letters, digits, '_', '-' and '.' (use a dict expression for other names)"
            )
        raise GraphError(f"line {number}: cannot read {line!r}: {_SYNTAX}")
    job, rest = match.group(1), match.group(2) or ""
    items = [item.strip() for item in rest.split(",")]
    if items and items[-1] == "":  # "job:" and a trailing comma
        items.pop()
    parents: list[Any] = []
    for item in items:
        if not item:
            raise GraphError(
                f"line {number}: empty parent name in {line!r}; separate parents with single commas"
            )
        word, _, rest = item.partition(" ")
        if word == "each":
            name = rest.strip()
            if not _NAME_RE.match(name):
                raise GraphError(
                    f"line {number}: 'each' in {line!r} needs one parent job type after it, "
                    f"e.g. '{job}: each grid, data'"
                )
            parents.append(Each(name))
            continue
        parents.append(item)
        if not _NAME_RE.match(item):
            fix = f" (write '{job}: {', '.join(item.split())}')" if " " in item else ""
            raise GraphError(
                f"line {number}: parent {item!r} of job {job!r} is not a job type name; "
                f"separate parents with commas{fix}"
            )
    return job, parents


def graph_from_cell(body: str, namespace: Mapping[str, Any], *, first_line: int = 1) -> JobGraph:
    """The graph a ``%%overseer_graph`` cell body declares.

    The line syntax is read first. A body that is not in it but is a Python
    expression is evaluated in ``namespace``; its value must be a dict of job
    type -> parents or a :class:`JobGraph`. A body that is a single name bound
    in ``namespace`` to such a value uses that value.

    Raises :class:`GraphError` (with a line number for syntax errors).
    """
    lines = [ln.split("#", 1)[0].strip() for ln in body.splitlines()]
    lines = [ln for ln in lines if ln]
    if len(lines) == 1 and isinstance(namespace.get(lines[0]), (Mapping, JobGraph)):
        return _as_graph(namespace[lines[0]], lines[0])
    if lines and not all(_LINE_RE.match(ln) for ln in lines) and _is_expression(body):
        try:
            scope = namespace if isinstance(namespace, dict) else dict(namespace)
            value = eval(compile(_expression_source(body)[0], "<overseer_graph>", "eval"), scope)
        except Exception as exc:
            raise GraphError(
                f"evaluating the graph expression raised {type(exc).__name__}: {exc}; "
                "fix the expression, or write one job per line ('job: parent, parent')"
            ) from exc
        return _as_graph(value, "the graph expression")
    if lines and lines[0][0] in "{(":
        _is_expression(body, first_line=first_line, explain=True)
    return parse_graph_text(body, first_line=first_line)


def _is_expression(body: str, *, first_line: int = 1, explain: bool = False) -> bool:
    source, skipped = _expression_source(body)
    try:
        ast.parse(source, mode="eval")
    except SyntaxError as exc:
        if explain:  # the body looks like a dict expression: say what Python says
            line = first_line + skipped + (exc.lineno or 1) - 1
            raise GraphError(
                f"line {line}: the graph expression is not valid Python ({exc.msg}); "
                'write a dict such as {"start": [], "finish": ["start"]}'
            ) from None
        return False
    return True


def _expression_source(body: str) -> tuple[str, int]:
    """``body`` without leading blank lines and indentation, and how many lines were skipped."""
    source = body.lstrip()
    return source.rstrip(), body[: len(body) - len(source)].count("\n")


def _as_graph(value: Any, what: str) -> JobGraph:
    if isinstance(value, JobGraph):
        return value
    if isinstance(value, Mapping):
        return JobGraph(value)
    raise GraphError(
        f"{what} is a {type(value).__name__}, not a job graph; give a dict of job type -> "
        'list of parents, e.g. {"start": [], "finish": ["start"]}'
    )
