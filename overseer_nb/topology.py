"""The jobs of a run as they are now: job types, and the items of mapped types once known (SPEC §12).

A graph names job types; a run's jobs are its unmapped types, one *gate* per
mapped type (the type itself: its status sums up its items'), and the items
``train[0]``, ``train[1]``, ... once the parent a type maps over has finished
(:meth:`Topology.expand`). Edges between jobs follow from the graph:

- an item ``train[i]`` of a type mapping over ``grid`` has the parent ``grid``
  (it gets item ``i`` of its result), or ``grid[i]`` if ``grid`` is mapped too
  (element by element);
- any other edge from a mapped type is *whole*: the child waits for every item
  (or, before they are known, for the gate).

Pure: no threads, no I/O. The state machine asks it for parents, children and
order instead of the graph.
"""

from __future__ import annotations

from collections.abc import Iterator

from .graph import JobGraph, item_key, split_key

__all__ = ["Topology"]


class Topology:
    """The current jobs of a run of ``graph`` and the edges between them."""

    def __init__(self, graph: JobGraph):
        self.graph = graph
        self.items: dict[str, int | None] = {t: None for t in graph.mapped}  # None: not known yet
        self._type_rank = {t: i for i, t in enumerate(graph.topological_order())}
        self._ranks: dict[str, tuple[int, int]] = {}  # key -> rank, made once
        # element-wise children: mapped type -> types mapping over it
        mapped = graph.mapped
        self._over: dict[str, tuple[str, ...]] = {t: () for t in graph}
        for c in mapped:
            parent = graph.each_of(c)
            self._over[parent] += (c,)

    # -- keys ----------------------------------------------------------------------
    def is_gate(self, key: str) -> bool:
        """True for a mapped job type itself (never run; its status sums up its items')."""
        return key in self.items

    def item_keys(self, job: str) -> list[str]:
        """The items of mapped type ``job`` (empty while not known)."""
        n = self.items.get(job)
        return [item_key(job, i) for i in range(n)] if n else []

    def keys(self) -> Iterator[str]:
        """Every current job, each after its parents."""
        for t in self.graph.topological_order():
            yield t
            yield from self.item_keys(t)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        t, i = split_key(key)
        if i is None:
            return t in self.graph
        n = self.items.get(t)
        return n is not None and i < n

    def rank(self, key: str) -> tuple[int, int]:
        """A sort key: parents before children, a gate before its items, items in order."""
        found = self._ranks.get(key)
        if found is None:
            t, i = split_key(key)
            found = self._ranks[key] = (self._type_rank[t], -1 if i is None else i)
        return found

    # -- expanding -------------------------------------------------------------------
    def with_items_of(self, job: str) -> list[str]:
        """Mapped ``job`` and every type mapping over it item by item (they have as many items), ``job`` first."""
        found, stack = [], [job]
        while stack:
            t = stack.pop()
            found.append(t)
            stack.extend(self._over[t])
        return found

    def expand(self, job: str, count: int) -> list[str]:
        """Mapped ``job`` has ``count`` items, and so has every type mapping over it; returns those types."""
        types = self.with_items_of(job)
        for t in types:
            self.items[t] = count
        return types

    def collapse(self, job: str) -> list[str]:
        """Forget the items of mapped ``job`` and of the types mapping over it; return the items forgotten."""
        gone: list[str] = []
        for t in self.with_items_of(job):
            gone.extend(self.item_keys(t))
            self.items[t] = None
        return gone

    # -- edges -----------------------------------------------------------------------
    def whole(self, parent: str) -> list[str]:
        """What a job waits for when it takes job type ``parent`` whole."""
        if parent not in self.items:
            return [parent]
        return [parent] if self.items[parent] is None else self.item_keys(parent)

    def parents(self, key: str) -> list[str]:
        """The jobs ``key`` waits for."""
        t, i = split_key(key)
        mapped_over = self.graph.each_of(t)
        found: list[str] = []
        for p in self.graph.parents(t):
            if i is not None and p == mapped_over:
                found.append(item_key(p, i) if p in self.items else p)
            else:
                found.extend(self.whole(p))
        return found

    def children(self, key: str) -> list[str]:
        """The jobs that wait for ``key``."""
        t, i = split_key(key)
        if t in self.items:  # a gate stands for its items only until they are known
            if (i is None) != (self.items[t] is None):
                return self._element_children(t, i) if i is not None else []
        found: list[str] = []
        for c in self.graph.children(t):
            if c not in self.items:
                found.append(c)
                continue
            if self.graph.each_of(c) == t and t in self.items:
                continue  # element by element: below
            found.append(c)  # the gate, for what waits on it before the items are known
            found.extend(self.item_keys(c))
        if i is not None:
            found.extend(self._element_children(t, i))
        elif t in self.items:  # an unexpanded gate: its element-wise types' gates wait on it
            found.extend(self._over[t])
        return found

    def _element_children(self, t: str, i: int) -> list[str]:
        return [item_key(c, i) for c in self._over[t] if self.items.get(c) is not None]

    def descendants(self, key: str) -> set[str]:
        """Every job that waits for ``key``, directly or not."""
        return self._reach(key, self.children)

    def ancestors(self, key: str) -> set[str]:
        """Every job ``key`` waits for, directly or not."""
        return self._reach(key, self.parents)

    @staticmethod
    def _reach(key: str, edges) -> set[str]:
        seen: set[str] = set()
        stack = list(edges(key))
        while stack:
            nxt = stack.pop()
            if nxt not in seen:
                seen.add(nxt)
                stack.extend(edges(nxt))
        return seen
