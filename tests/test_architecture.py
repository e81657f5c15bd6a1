"""The layers of ARCHITECTURE.md, read from the source: imports point down, never around.

Every module of src/rsdistill is parsed (not imported) and its ``rsdistill`` imports,
including those inside functions, become edges of a module graph. A module may import
its own package and the layers below it; the packages of one layer (data, models,
losses) may not import each other; the graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rsdistill"
MAX_LINES = 400

# Lowest first. A top-level module (rsdistill/errors.py) is its own unit.
LAYERS = [
    {"errors", "io", "registry", "config", "paths", "__init__"},
    {"runtime"},
    {"data", "models", "losses"},
    {"evaluation"},
    {"training"},
    {"experiments"},
    {"export"},
    {"report"},
    {"cli"},
    {"__main__"},
]
# The bottom modules may import one another (config and registry raise errors' types).
BOTTOM = 0


def unit_of(module: str) -> str:
    """``rsdistill.training.trainer`` -> ``training``; ``rsdistill.io`` -> ``io``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(unit: str) -> int:
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"{unit} belongs to no layer of ARCHITECTURE.md; add it to LAYERS")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The rsdistill modules ``path`` imports (``from a.b import c`` is ``a.b.c`` when c is
    a module, else ``a.b``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "rsdistill"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "rsdistill":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in modules else node.module)
    return {m for m in out if m in modules}


def relative_imports(path: Path) -> list[str]:
    """``from . import x`` / ``from .y import z`` lines of ``path`` (absolute imports only:
    they are what the layer rule reads)."""
    return [f"{path.name}:{node.lineno}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.level > 0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a layer above or beside ``a``'s."""
    wrong = []
    for module, targets in graph.items():
        src_unit = unit_of(module)
        for target in targets:
            dst_unit = unit_of(target)
            if dst_unit == src_unit or dst_unit == "__init__" or \
                    layer_of(src_unit) == layer_of(dst_unit) == BOTTOM:
                continue
            if layer_of(dst_unit) >= layer_of(src_unit):
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def unregistered_procedures(methods, procedures) -> list[str]:
    """Methods (variants included) whose ``procedure`` no procedure is registered under."""
    wrong = []
    for name in methods:
        method = methods.get(name)
        for m in [method, *(method.variants.get(v) for v in (method.variants or []))]:
            if m.procedure not in procedures:
                wrong.append(f"{m.name}: {m.procedure}")
    return wrong


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def test_every_import_points_to_the_same_package_or_a_lower_layer(graph):
    wrong = upward_imports(graph)
    assert not wrong, "imports of a layer above or beside: " + "; ".join(wrong)


def test_there_is_no_import_cycle(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_no_relative_imports():
    found = [f"{p.relative_to(SRC)}: {hit}" for p in sorted(PACKAGE.rglob("*.py"))
             for hit in relative_imports(p)]
    assert not found, "relative imports (write rsdistill.<package>...): " + "; ".join(found)


def test_every_method_names_a_registered_procedure():
    from rsdistill.experiments.procedures import PROCEDURES
    from rsdistill.losses import METHODS

    wrong = unregistered_procedures(METHODS, PROCEDURES)
    assert not wrong, "Method.procedure without a registered procedure: " + "; ".join(wrong)


def test_no_source_file_is_longer_than_the_limit():
    long = {str(p.relative_to(SRC)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_the_checker_sees_each_kind_of_violation(tmp_path):
    # The rules themselves must work: each is called on a case it has to reject.
    fake = {"rsdistill.data.x": {"rsdistill.training.trainer"},
            "rsdistill.training.trainer": {"rsdistill.data.x"},
            "rsdistill.models.y": {"rsdistill.losses.z"}, "rsdistill.losses.z": set()}
    assert upward_imports(fake) == ["rsdistill.data.x -> rsdistill.training.trainer",
                                    "rsdistill.models.y -> rsdistill.losses.z"]
    assert import_cycles(fake) == ["rsdistill.data.x -> rsdistill.training.trainer -> "
                                   "rsdistill.data.x"]
    probe = tmp_path / "m.py"
    probe.write_text("def f():\n    from rsdistill.training import trainer\n"
                     "from . import sibling\nfrom .other import thing\n")
    assert imports_of(probe, {"rsdistill.training.trainer": probe, "rsdistill.training": probe}) \
        == {"rsdistill.training.trainer"}
    assert relative_imports(probe) == ["m.py:3", "m.py:4"]

    from rsdistill.losses.method import Method
    from rsdistill.registry import Registry

    methods = Registry("method")
    methods.add("ok", Method("ok", "fine", procedure="single"))
    methods.add("odd", Method("odd", "typo", procedure="singel"))
    assert unregistered_procedures(methods, {"single": object()}) == ["odd: singel"]
