"""Issue 9: every function of the package fits on a screen (aim <= 60 lines, never over 80)."""

import ast

from conftest import REPO

MAX_LINES = 80


def function_lengths():
    for path in sorted((REPO / "src" / "lrscale").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{path.relative_to(REPO / 'src')}:{node.name}", node.end_lineno - node.lineno + 1


def test_no_function_over_80_lines():
    lengths = dict(function_lengths())
    assert len(lengths) > 50  # the walk really found the package's functions
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"functions over {MAX_LINES} lines: {too_long}"
