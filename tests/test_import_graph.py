"""The modules of overlapflow import each other without cycles, function-level imports included.

Every ``import`` statement of every module counts (also inside functions), except those under
``if TYPE_CHECKING:``, which never run. Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``
first, so it is an edge to each of them too, unless the importing module lies inside that package
(it is then already being imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "overlapflow"


def module_files() -> dict[str, Path]:
    """Module name -> file, for every module of the package (packages by their __init__.py)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(name: str, path: Path, modules) -> set[str]:
    """The modules ``name`` imports anywhere in its file (absolute names; ``from p import m`` gives p.m
    when that is a module, else p)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the overlapflow modules importing it runs (see the module docstring)."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        parts = name.split(".")
        own_packages = {".".join(parts[:i]) for i in range(1, len(parts) + (path.name == "__init__.py"))}
        edges = set()
        for target in imported_names(name, path, modules):
            pieces = target.split(".")
            for i in range(1, len(pieces) + 1):
                module = ".".join(pieces[:i])
                if module in modules and module != name and module not in own_packages:
                    edges.add(module)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_graph_sees_function_level_and_package_imports():
    graph = import_graph()
    assert "overlapflow.tasks.teacher" in graph["overlapflow.tasks"]  # the package's __init__
    assert "overlapflow.meanfield" in graph["overlapflow.tasks.teacher"]
    assert "overlapflow.tasks" not in graph["overlapflow.meanfield"]  # only under TYPE_CHECKING
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    edges = [sorted((a, b) for a in c for b in graph[a] if b in c) for c in found]
    assert not found, "import cycles, by their edges:\n" + "\n".join(map(str, edges))


def test_no_module_imports_the_package_root():
    """Upward imports: a module of overlapflow never imports the package itself (its __init__)."""
    graph = import_graph()
    assert [name for name, edges in graph.items() if "overlapflow" in edges] == []


def documented_layers() -> dict[str, int]:
    """Module pattern -> layer, from the table of docs/architecture.md (``pkg.*``: every module in pkg)."""
    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    layers = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 3 and cells[1].isdigit():
            for pattern in cells[2].replace("`", "").split(","):
                layers[pattern.strip()] = int(cells[1])
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int:
    name = module.removeprefix("overlapflow.") if module != "overlapflow" else module
    if name in layers:
        return layers[name]
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:i]) + ".*" in layers:
            return layers[".".join(parts[:i]) + ".*"]
    raise AssertionError(f"{module} is not in the layer table of docs/architecture.md")


def test_imports_go_down_the_documented_layers():
    """docs/architecture.md's layer table is the truth: every import goes to the same or a lower layer."""
    graph, layers = import_graph(), documented_layers()
    upward = [
        (a, layer_of(a, layers), b, layer_of(b, layers))
        for a, edges in graph.items()
        for b in edges
        if layer_of(b, layers) > layer_of(a, layers)
    ]
    assert upward == [], "imports going up a layer (importer, its layer, imported, its layer):\n" + "\n".join(
        map(str, upward)
    )
