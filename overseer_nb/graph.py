"""The job graph: job type -> parent job types, validated before anything runs.

A parent written ``each("grid")`` makes the job type *mapped*: one job per item
of that parent's result, named ``train[0]``, ``train[1]``, ... (SPEC §12).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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

__all__ = ["JobGraph", "Each", "each", "item_key", "split_key"]


@dataclass(frozen=True)
class Each:
    """A parent a job type maps over: ``each("grid")`` in its parent list (see :func:`each`)."""

    parent: str

    def __repr__(self) -> str:
        return f"each({self.parent!r})"


def each(parent: str) -> Each:
    """In a job type's parents: run one job per item of ``parent``'s result (a list, tuple or range).

    ``{"grid": [], "data": [], "train": [ov.each("grid"), "data"], "best": ["train"]}``:
    ``train[i]`` gets item ``i`` of ``grid``'s result as ``job.inputs["grid"]`` and
    ``data``'s whole; ``best`` gets the list of every ``train[i]``'s result. Mapping
    over a mapped type (``[ov.each("train")]``) goes item by item.
    """
    _check_name(parent, where="the parent of each()")
    return Each(parent)


def item_key(job: str, index: int) -> str:
    """The name of item ``index`` of mapped job type ``job``: ``train[3]``."""
    return f"{job}[{index}]"


def split_key(key: str) -> tuple[str, int | None]:
    """``("train", 3)`` for ``"train[3]"``; ``(key, None)`` for a job type."""
    if not key.endswith("]"):  # job types cannot contain brackets: most keys end here
        return key, None
    at = key.rfind("[")
    digits = key[at + 1:-1]
    if at > 0 and digits.isdigit() and digits.isascii() and str(int(digits)) == digits:
        return key[:at], int(digits)
    return key, None


class JobGraph:
    """An immutable, validated job graph in Overseer's shape.

    ``JobGraph({"start": [], "result1": ["start"], "result2": ["start"],
    "finish": ["result1", "result2"]})``: each job type lists its parents; a job
    runs only after all its parents finished.

    Raises a :class:`~overseer_nb.errors.GraphError` subclass naming the bad
    value: :class:`CycleError` (with ``.cycle``), :class:`UnknownParentError`,
    :class:`SelfDependencyError`, :class:`JobNameError`, :class:`ParentsError`.
    """

    __slots__ = ("_parents", "_children", "_order", "_depth", "_each")

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
        self._each: dict[str, str] = {}  # mapped job type -> the parent it maps over
        for job, parents in mapping.items():
            _check_name(job, where="job type")
            self._parents[job], mapped = _check_parents(job, parents)
            if mapped is not None:
                self._each[job] = mapped
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

    def each_of(self, job: str) -> str | None:
        """The parent mapped job type ``job`` maps over, or None if ``job`` is not mapped."""
        return self._each.get(self._known(job))

    @property
    def mapped(self) -> tuple[str, ...]:
        """The mapped job types, in declaration order."""
        return tuple(self._each)

    def to_dict(self) -> dict[str, list[Any]]:
        """The graph as a dict of job type -> list of parents (``each(...)`` where one is mapped over)."""
        return {
            job: [Each(p) if self._each.get(job) == p else p for p in parents]
            for job, parents in self._parents.items()
        }

    def to_json(self) -> dict[str, list[Any]]:
        """The graph as JSON-ready data: a parent mapped over is ``{"each": "grid"}`` (JobGraph reads it back)."""
        return {
            job: [{"each": p} if self._each.get(job) == p else p for p in parents]
            for job, parents in self._parents.items()
        }

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
        return isinstance(other, JobGraph) and self._parents == other._parents and self._each == other._each

    def __hash__(self) -> int:
        return hash((tuple(self._parents.items()), tuple(sorted(self._each.items()))))

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
    if "[" in name or "]" in name:
        raise JobNameError(
            f"{where} {name!r}{place} contains '[' or ']', which name the items of mapped job "
            "types (train[3]); choose a name without brackets"
        )


def _check_parents(job: str, parents: object) -> tuple[tuple[str, ...], str | None]:
    """The parents of ``job`` as names, and the one it maps over (``each``), if any."""
    if isinstance(parents, (str, bytes)) or not isinstance(parents, (list, tuple, set, frozenset)):
        fix = f"[{parents!r}]" if isinstance(parents, str) else "[] for a job with no parents"
        raise ParentsError(
            f"the parents of job {job!r} must be a list of job types, got "
            f"{type(parents).__name__} {_short(parents)}; write {fix}"
        )
    seen: dict[str, None] = {}
    mapped: list[str] = []
    for parent in parents:
        if isinstance(parent, Mapping) and set(parent) == {"each"}:  # as to_json writes it
            parent = Each(parent["each"])
        if isinstance(parent, Each):
            _check_name(parent.parent, where="parent", job=job)
            mapped.append(parent.parent)
            parent = parent.parent
        else:
            _check_name(parent, where="parent", job=job)
        seen[parent] = None
    if len(mapped) > 1:
        raise ParentsError(
            f"job {job!r} maps over {' and '.join(map(repr, mapped))}; a job type maps over at most one "
            f"parent (each): map over one and pass the other whole, e.g. [each({mapped[0]!r}), {mapped[1]!r}]"
        )
    return tuple(seen), (mapped[0] if mapped else None)


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
