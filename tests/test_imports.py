"""Issue 22 (boundaries): no import cycle in the package, counting imports inside functions (they
hide a cycle at import time, not from a reader), and the modules the DAG build and `lrscale status`
load stay free of numpy and scipy."""

import ast
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "src" / "lrscale"


def import_graph() -> dict:
    """module -> the package modules it imports anywhere in its body (relative or absolute)."""
    names = {p.stem for p in PACKAGE.glob("*.py")}
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = (node.module or "").removeprefix("lrscale").lstrip(".")
                if node.level == 0 and not (node.module or "").startswith("lrscale"):
                    continue
                found |= {base.split(".")[0]} if base else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("lrscale.")}
        graph[path.stem] = (found & names) - {path.stem, "__init__"}
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
    assert {"plans", "report"} <= graph["fit"]  # run_fit's, inside the function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_planner_locates_optima_without_the_fit():
    """The planner asks the analysis' per-B location (lrscale.locators), not the whole fit."""
    graph = import_graph()
    assert "locators" in graph["adaptive"] and "fit" not in graph["adaptive"]


def test_plan_and_status_readers_import_no_numpy_or_scipy():
    """Building the DAG reads round plans (lrscale.plans) and `lrscale status` reads them too: neither
    pays for numpy or scipy (the planner, lrscale.adaptive, did: 1.2 s)."""
    code = ("import sys, lrscale.plans, lrscale.status, lrscale.config; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'scipy', 'torch', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
