"""The house's walls (docs/architecture.md), read from the source with ``ast``: nothing is imported.

- No two modules of ``study``, ``tasks`` and ``dashboards`` import each other, directly or round a cycle
  (an import inside a function counts too: it is a dependency all the same; one under
  ``if TYPE_CHECKING:`` does not: it names a type for annotations and never runs).
- The packages depend one way: ``tasks`` on none of the others, ``study/results`` (the leaf) on none,
  ``dashboards`` on ``study/results`` only, ``study`` on ``tasks``, ``study/results`` and ``dashboards``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("study", "tasks", "dashboards")
LEAF = "study.results"
# Which parts may import which (a part is a package, with study/results counted as a part of its own).
ALLOWED = {
    "tasks": {"tasks"},
    LEAF: {LEAF},
    "dashboards": {"dashboards", LEAF},
    "study": {"study", LEAF, "tasks", "dashboards"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _known(name: str, known: dict[str, Path]) -> str | None:
    """The project module ``name`` is, or is inside (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST):
    """Every node, except those under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    graph = {}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in PACKAGES and (target := _known(name, known)):
                    targets.add(target)
        targets.discard(module)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def part(module: str) -> str:
    return LEAF if module == LEAF or module.startswith(LEAF + ".") else module.split(".")[0]


def test_the_walker_sees_cycles_and_relative_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = imports(modules())
    assert "study.results.layout" in graph["study.results.store"]
    assert "study.results" in graph["dashboards.degradation"]


def test_no_modules_import_each_other():
    found = cycles(imports(modules()))
    assert not found, "modules that import each other (directly or round a cycle): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_packages_import_only_what_they_may():
    bad = [
        f"{module} -> {target}"
        for module, targets in imports(modules()).items()
        for target in sorted(targets)
        if part(target) not in ALLOWED[part(module)]
    ]
    assert not bad, "imports across the walls of docs/architecture.md:\n" + "\n".join(bad)


def test_the_parts_do_not_import_each_other():
    graph = {p: set() for p in ALLOWED}
    for module, targets in imports(modules()).items():
        graph[part(module)] |= {part(t) for t in targets} - {part(module)}
    assert not cycles(graph), graph
