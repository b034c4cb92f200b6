"""The job graph: job type -> parent job types, validated before anything runs."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import (
    CycleError,
    GraphError,
    JobNameError,
    ParentsError,
    SelfDependencyError,
    UnknownParentError,
)
from .text import clip_end

__all__ = ["JobGraph"]


class JobGraph:
    """An immutable, validated job graph in Overseer's shape.

    ``JobGraph({"start": [], "result1": ["start"], "result2": ["start"],
    "finish": ["result1", "result2"]})``: each job type lists its parents; a job
    runs only after all its parents finished.

    Raises a :class:`~overseer_nb.errors.GraphError` subclass naming the bad
    value: :class:`CycleError` (with ``.cycle``), :class:`UnknownParentError`,
    :class:`SelfDependencyError`, :class:`JobNameError`, :class:`ParentsError`.
    """

    __slots__ = ("_parents", "_children", "_order", "_depth")

    def __init__(self, mapping: Mapping[str, Any] | JobGraph):
        if isinstance(mapping, JobGraph):
            mapping = mapping.to_dict()
        if not isinstance(mapping, Mapping):
            raise GraphError(
                f"a job graph is a dict of job type -> list of parent job types, "
                f"got {type(mapping).__name__} {_short(mapping)}; "
                'write e.g. {"start": [], "finish": ["start"]}'
            )
        self._parents: dict[str, tuple[str, ...]] = {}
        for job, parents in mapping.items():
            _check_name(job, where="job type")
            self._parents[job] = _check_parents(job, parents)
        for job, parents in self._parents.items():
            for parent in parents:
                if parent == job:
                    raise SelfDependencyError(job)
                if parent not in self._parents:
                    close = difflib.get_close_matches(parent, list(self._parents), n=1)
                    raise UnknownParentError(job, parent, close[0] if close else None)
        self._children: dict[str, tuple[str, ...]] = {job: () for job in self._parents}
        for job, parents in self._parents.items():
            for parent in parents:
                self._children[parent] += (job,)
        self._order, self._depth = _topological_order(self._parents, self._children)

    # -- reading ---------------------------------------------------------
    @property
    def job_types(self) -> tuple[str, ...]:
        """Job types in declaration order."""
        return tuple(self._parents)

    def parents(self, job: str) -> tuple[str, ...]:
        """The parent job types of ``job``."""
        return self._parents[self._known(job)]

    def children(self, job: str) -> tuple[str, ...]:
        """The job types that list ``job`` as a parent."""
        return self._children[self._known(job)]

    def roots(self) -> tuple[str, ...]:
        """Job types with no parents: they are ready at once."""
        return tuple(j for j, p in self._parents.items() if not p)

    def topological_order(self) -> tuple[str, ...]:
        """Every job type, each after all its parents."""
        return self._order

    def depth(self, job: str) -> int:
        """Length of the longest parent chain above ``job`` (roots are 0)."""
        return self._depth[self._known(job)]

    def descendants(self, job: str) -> set[str]:
        """Every job type that depends on ``job``, directly or transitively."""
        return _reach(self._known(job), self._children)

    def ancestors(self, job: str) -> set[str]:
        """Every job type ``job`` depends on, directly or transitively."""
        return _reach(self._known(job), self._parents)

    def to_dict(self) -> dict[str, list[str]]:
        """The graph as a plain dict of job type -> list of parents."""
        return {job: list(parents) for job, parents in self._parents.items()}

    def _known(self, job: str) -> str:
        if job not in self._parents:
            from .errors import UnknownJobError

            close = difflib.get_close_matches(str(job), list(self._parents), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise UnknownJobError(
                f"{job!r} is not a job type of this graph{hint} "
                f"Job types: {', '.join(self._parents) or '(none)'}."
            )
        return job

    # -- protocols -------------------------------------------------------
    def __len__(self) -> int:
        return len(self._parents)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parents)

    def __contains__(self, job: object) -> bool:
        return job in self._parents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobGraph) and self._parents == other._parents

    def __hash__(self) -> int:
        return hash(tuple(self._parents.items()))

    def __repr__(self) -> str:
        return f"JobGraph({self.to_dict()!r})"

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Show the graph as a static Graphviz picture in a notebook."""
        from .display import graph_mimebundle

        return graph_mimebundle(self)


def _short(value: object, limit: int = 60) -> str:
    return clip_end(repr(value), limit)


def _check_name(name: object, *, where: str, job: str | None = None) -> None:
    place = f" in the parents of {job!r}" if job is not None else ""
    if not isinstance(name, str):
        raise JobNameError(
            f"{where} {_short(name)}{place} is a {type(name).__name__}; "
            "job types are non-empty strings, e.g. 'start' or 'process-1a'"
        )
    if not name.strip():
        raise JobNameError(
            f"{where} {name!r}{place} is empty; "
            "job types are non-empty strings, e.g. 'start' or 'process-1a'"
        )


def _check_parents(job: str, parents: object) -> tuple[str, ...]:
    if isinstance(parents, (str, bytes)) or not isinstance(parents, (list, tuple, set, frozenset)):
        fix = f"[{parents!r}]" if isinstance(parents, str) else "[] for a job with no parents"
        raise ParentsError(
            f"the parents of job {job!r} must be a list of job types, got "
            f"{type(parents).__name__} {_short(parents)}; write {fix}"
        )
    seen: dict[str, None] = {}
    for parent in parents:
        _check_name(parent, where="parent", job=job)
        seen[parent] = None
    return tuple(seen)


def _topological_order(parents, children) -> tuple[tuple[str, ...], dict[str, int]]:
    """Every job after its parents (by depth, then declaration order), and each job's depth."""
    waiting = {job: len(p) for job, p in parents.items()}
    ready = [job for job, n in waiting.items() if n == 0]
    order: list[str] = []
    while ready:
        job = ready.pop()
        order.append(job)
        for child in children[job]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) < len(parents):
        raise CycleError(_find_cycle({j for j, n in waiting.items() if n > 0}, parents))
    # keep declaration order among jobs at the same depth for stable displays
    rank = {job: i for i, job in enumerate(parents)}
    depth: dict[str, int] = {}
    for job in order:
        depth[job] = 1 + max((depth[p] for p in parents[job]), default=-1)
    return tuple(sorted(order, key=lambda j: (depth[j], rank[j]))), depth


def _find_cycle(stuck: set[str], parents) -> list[str]:
    """A cycle among ``stuck`` jobs: each job in it lists the next as a parent."""
    start = min(stuck)
    path: list[str] = []
    index: dict[str, int] = {}
    job = start
    while job not in index:
        index[job] = len(path)
        path.append(job)
        job = next(p for p in parents[job] if p in stuck)
    return path[index[job]:] + [job]


def _reach(job: str, edges) -> set[str]:
    seen: set[str] = set()
    stack = list(edges[job])
    while stack:
        nxt = stack.pop()
        if nxt not in seen:
            seen.add(nxt)
            stack.extend(edges[nxt])
    return seen
