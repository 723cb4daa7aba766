"""Issue 22 (boundaries): no import cycle in the package, counting imports inside functions (they
hide a cycle at import time, not from a reader), and the modules the DAG build and `lrscale status`
load stay free of numpy and scipy."""

import ast
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "src" / "lrscale"


def module_name(path) -> str:
    """A module's dotted name inside the package: fit.py -> "analysis.fit"; a package's __init__ -> its name."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node, package: list, names: set) -> set:
    """The package modules one import statement names (relative or absolute)."""
    if isinstance(node, ast.Import):
        return {a.name.removeprefix("lrscale.") for a in node.names if a.name.startswith("lrscale.")} & names
    if node.level == 0:
        if not (node.module or "").startswith("lrscale"):
            return set()
        base = node.module.removeprefix("lrscale").lstrip(".")
    else:
        base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
    found = {f"{base}.{a.name}".lstrip(".") for a in node.names} & names  # `from .pkg import module`
    return found or ({base} & names)


def import_graph() -> dict:
    """module -> the package modules it imports anywhere in its body (relative or absolute)."""
    paths = sorted(PACKAGE.rglob("*.py"))
    names = {module_name(p) for p in paths} - {""}
    graph = {}
    for path in paths:
        me = module_name(path)
        package = me.split(".")[: None if path.stem == "__init__" else -1] if me else []
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found |= _imported(node, package, names)
        graph[me or "__init__"] = found - {me}
    return graph


def find_cycle(graph: dict) -> list | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = "done"
        stack.pop()
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m))), None)


def test_the_walk_sees_imports_inside_functions():
    graph = import_graph()
    assert "gpu_slots" in graph["cli"]  # cmd_train's `from . import gpu_slots`, inside the function
    assert {"plans", "analysis.report"} <= graph["analysis.fit"]  # run_fit's, inside the function
    assert {"config", "analysis.forms", "metrics"} <= graph["analysis.fit"]  # `from ..`, `from .`, `from ..metrics`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_planner_locates_optima_without_the_fit():
    """The planner asks the analysis' per-B location (lrscale.analysis.locators), not the whole fit."""
    graph = import_graph()
    assert "analysis.locators" in graph["adaptive"] and "analysis.fit" not in graph["adaptive"]


def test_plan_and_status_readers_import_no_numpy_or_scipy():
    """Building the DAG reads round plans (lrscale.plans) and `lrscale status` reads them too: neither
    pays for numpy or scipy (the planner, lrscale.adaptive, did: 1.2 s)."""
    code = ("import sys, lrscale.plans, lrscale.status, lrscale.config; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'scipy', 'torch', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_module_imports_alone():
    """Each module imported first, in a fresh set of lrscale modules (an import-time cycle or a
    missing import shows here, whatever order the other tests import them in)."""
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    for m in [m for m in sys.modules if m == 'lrscale' or m.startswith('lrscale.')]:\n"
            "        del sys.modules[m]\n"
            "    importlib.import_module('lrscale.' + name if name else 'lrscale')\n"
            "print('ok')")
    names = sorted(import_graph())
    out = subprocess.run([sys.executable, "-c", code, *[n for n in names if n not in ("__init__", "__main__")]], capture_output=True,
                         text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
