"""The layer contract of docs/architecture.md, checked on the source.

Every import in the package (at module level or inside a function; imports
under ``if TYPE_CHECKING:`` aside) is read with ``ast`` and held against the
rules: imports point down the layers, no cycles, no private names across
folders, other folders only through their package, no module over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "overseer_nb"
FOLDERS = ("execution", "journal", "display", "notebook", "store")

# Higher layers may import lower ones, never the other way. Each entry: layer
# name -> rank; modules not named here are the pure core (rank 0).
LAYERS = {
    "overseer_nb": 7,  # the package's __init__: the public surface
    "overseer_nb.notebook": 6,
    "overseer_nb.api": 5,
    "overseer_nb.journal": 4,
    "overseer_nb.running": 3,
    "overseer_nb._run_loop": 3,
    "overseer_nb._run_resume": 3,
    "overseer_nb._run_data": 3,
    "overseer_nb._run_cache": 3,
    "overseer_nb.display": 2,
    "overseer_nb.execution": 2,
    "overseer_nb.cache": 2,  # fingerprints: inspects handlers, pickles values; runs nothing
    "overseer_nb.store": 1,  # engines and the kernel both read and write it
}
# display and execution are siblings: neither imports the other
INDEPENDENT = {("overseer_nb.display", "overseer_nb.execution")}
# The only upward import: a graph shows itself in a notebook (lazily, in _repr_mimebundle_).
ALLOWED_UPWARD = {("overseer_nb.graph", "overseer_nb.display")}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imports(name: str, path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported module, names taken from it, line) for each runtime import of the module."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("overseer_nb"):
                continue
            names = tuple(a.name for a in node.names)
            # `from . import sql` imports a module: record it as such
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in ALL]
            if subs:
                found.extend((s, (), node.lineno) for s in subs)
                rest = tuple(n for n in names if f"{target}.{n}" not in ALL)
                if rest:
                    found.append((target, rest, node.lineno))
            else:
                found.append((target, names, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("overseer_nb"):
                    found.append((alias.name, (), node.lineno))
    return found


ALL = modules()


def layer(name: str) -> str | None:
    """The layer a module belongs to (the longest matching entry), None for the core."""
    best = None
    for key in LAYERS:
        if (name == key or name.startswith(key + ".")) and key != "overseer_nb":
            if best is None or len(key) > len(best):
                best = key
    if best is None and name == "overseer_nb":
        return "overseer_nb"
    return best


def rank(name: str) -> int:
    found = layer(name)
    return 0 if found is None else LAYERS[found]


def folder(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in FOLDERS else ""


EDGES = {
    (name, target, names, line)
    for name, path in ALL.items()
    for target, names, line in imports(name, path)
}


def test_imports_point_down_the_layers():
    bad = []
    for src, dst, _names, line in EDGES:
        ls, ld = layer(src), layer(dst)
        if ls == ld:
            continue
        if (ls, ld) in INDEPENDENT or (ld, ls) in INDEPENDENT:
            bad.append(f"{src}:{line} imports {dst}: display and execution do not import each other")
        elif rank(dst) > rank(src) and (src, ld) not in ALLOWED_UPWARD:
            bad.append(f"{src}:{line} imports {dst}, which is above it (docs/architecture.md)")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for src, dst, _names, _line in EDGES:
        target = dst
        while target not in ALL and "." in target:
            target = target.rsplit(".", 1)[0]
        if target != src:
            graph.setdefault(src, set()).add(target)
    # a package's __init__ importing its own modules is how it re-exports them
    for pkg in [m for m in ALL if ALL[m].name == "__init__.py"]:
        graph[pkg] = {t for t in graph.get(pkg, set()) if not t.startswith(pkg + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_other_folders_only_through_their_package_and_no_private_names():
    bad = []
    for src, dst, names, line in EDGES:
        fs, fd = folder(src), folder(dst)
        crossing = fd and fd != fs
        if crossing and dst != f"overseer_nb.{fd}":
            bad.append(f"{src}:{line} imports {dst}: import from overseer_nb.{fd} (its package), not its modules")
        if (crossing or (fs and not fd)) and any(n.startswith("_") for n in names):
            bad.append(f"{src}:{line} takes private {', '.join(n for n in names if n.startswith('_'))} from {dst}")
        if fs != fd and dst.rsplit(".", 1)[-1].startswith("_"):
            bad.append(f"{src}:{line} imports the private module {dst}")
    assert not bad, "\n".join(sorted(bad))


@pytest.mark.parametrize("name", sorted(ALL))
def test_no_module_over_400_lines(name):
    lines = len(ALL[name].read_text().splitlines())
    assert lines <= 400, f"{name} has {lines} lines; split it (STYLE.md)"


def test_every_folder_package_declares_its_public_names():
    for fd in FOLDERS:
        tree = ast.parse((PACKAGE / fd / "__init__.py").read_text())
        names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]
        assert "__all__" in names, f"overseer_nb/{fd}/__init__.py has no __all__"


def test_the_contract_would_catch_a_violation(tmp_path):
    # the checker itself: an upward import, a private cross-folder name, a cycle
    assert rank("overseer_nb.machine") < rank("overseer_nb.running") < rank("overseer_nb.journal")
    assert layer("overseer_nb.journal.sql") == "overseer_nb.journal"
    assert folder("overseer_nb.display.widget") == "display" and folder("overseer_nb.graph") == ""
    src = tmp_path / "overseer_nb" / "execution" / "bad.py"
    src.parent.mkdir(parents=True)
    src.write_text("from ..journal import _live\nfrom ..display.widget import RunWidget\n")
    found = imports("overseer_nb.execution.bad", src)
    assert ("overseer_nb.journal", ("_live",), 1) in found
    assert ("overseer_nb.display.widget", ("RunWidget",), 2) in found
