"""The package's layers import one way, and no modules import each other in a circle.

Read from the source with `ast` (imports inside functions included), so that a lazy import
cannot hide an upward dependency. Lower layers first; a module may import its own layer and
those below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: list[set[str]] = [
    {"fer_mine", "fer_mine.errors", "fer_mine.labels", "fer_mine.defaults", "fer_mine.logs"},
    {"fer_mine.transforms", "fer_mine.media", "fer_mine.sql"},
    {"fer_mine.amacnn", "fer_mine.people"},
    {"fer_mine.records"},
    {"fer_mine.pipeline"},
    {"fer_mine.reports"},
    {"fer_mine.commands"},
    {"fer_mine.cli"},
]
PACKAGE_DIRS = (
    "amacnn",
    "people",
    "transforms",
    "media",
    "records",
    "pipeline",
    "reports",
    "commands",
    "sql",
)


def layer_of(module: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        for number, layer in enumerate(LAYERS):
            if prefix in layer:
                return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(["fer_mine", *parts])


def imports_of(path: Path) -> set[str]:
    """Every fer_mine module `path` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fer_mine")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fer_mine"):
            # `from fer_mine.amacnn import int8` names a module; `from x import f` names a function
            found |= {f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                      for a in node.names}  # fmt: skip
    return found


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative / "__init__.py").is_file()


def package_graph() -> dict[str, set[str]]:
    files = [
        ROOT / "cli.py",
        ROOT / "errors.py",
        ROOT / "labels.py",
        ROOT / "defaults.py",
        ROOT / "__init__.py",
    ]
    for folder in PACKAGE_DIRS:
        files += sorted((ROOT / folder).rglob("*.py"))
    return {module_name(path): imports_of(path) for path in files}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} imports {i}" for m, found in graph.items() for i in found if layer_of(i) > layer_of(m)]


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the graph's modules, or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target] if target in path else [module, target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_no_module_imports_a_higher_layer():
    assert upward_imports(package_graph()) == []


def test_no_modules_import_each_other_in_a_circle():
    assert cycle(package_graph()) is None


def test_the_network_code_never_imports_the_pipeline_reports_or_commands():
    graph = package_graph()
    network = [m for m in graph if m.startswith("fer_mine.amacnn")]
    assert network
    assert not [
        (m, i)
        for m in network
        for i in graph[m]
        if i.startswith(("fer_mine.pipeline", "fer_mine.reports", "fer_mine.commands", "fer_mine.cli"))
    ]


@pytest.mark.parametrize(
    "graph, upward, circular",
    [
        ({"fer_mine.amacnn.model": {"fer_mine.pipeline.run"}}, True, False),
        ({"fer_mine.media.detect": {"fer_mine.amacnn.weights"}}, True, False),
        (
            {"fer_mine.amacnn.a": {"fer_mine.amacnn.b"}, "fer_mine.amacnn.b": {"fer_mine.amacnn.a"}},
            False,
            True,
        ),
        ({"fer_mine.pipeline.run": {"fer_mine.amacnn.model", "fer_mine.media.detect"}}, False, False),
    ],
)
def test_the_checks_catch_what_they_guard_against(graph, upward, circular):
    assert bool(upward_imports(graph)) == upward
    assert (cycle(graph) is not None) == circular


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in [ROOT / "cli.py", *(p for folder in PACKAGE_DIRS for p in (ROOT / folder).rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fer_mine"):
                found += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []


def test_no_function_of_the_package_is_longer_than_a_screen():
    """A function a reader can see whole: at most 80 lines, decorators included."""
    long = []
    for path in [ROOT / "cli.py", *(p for folder in PACKAGE_DIRS for p in (ROOT / folder).rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                if node.end_lineno - start + 1 > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long == []
