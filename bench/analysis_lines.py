"""Lines of the analysis package (issue 23.3's count), split into code, docstrings, comments and blank lines,
at two revisions: the base (before issue 23) and HEAD, so that a change in the count can be read as code or
as prose. A module counted at one revision only counts there (shared_shape.py before, surface.py and band.py
after). Read from git, not the work tree.

    python bench/analysis_lines.py [--base 2c9f01c] [--head HEAD] [--out bench/out/analysis_lines.json]
"""

import argparse
import ast
import io
import json
import subprocess
import tokenize
from pathlib import Path

PACKAGE = "src/lrscale/analysis"
LAYOUT = {"newline", "nl", "indent", "dedent", "endmarker"}  # tokens that are no code
OTHER_ISSUES = {"budget.py", "critical_batch.py", "groups.py", "horizons.py"}  # added by issues 24 and 25


def docstring_lines(src: str) -> set:
    """The lines of the module's, classes' and functions' docstrings."""
    doc = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                doc.update(range(first.lineno, first.end_lineno + 1))
    return doc


def line_sets(src: str) -> dict:
    """{code, docstring, comment}: the numbers of the lines of each kind, each line in one set (code beats a
    trailing comment)."""
    doc, code, comment = docstring_lines(src), set(), set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        name = tokenize.tok_name[tok.type].lower()
        if name == "comment":
            comment.add(tok.start[0])
        elif name not in LAYOUT:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return {"code": code - doc, "docstring": doc, "comment": comment - code - doc}


def kinds(src: str) -> dict:
    """{total, code, docstring, comment, blank}: line counts."""
    sets, total = line_sets(src), len(src.splitlines())
    return {"total": total, **{k: len(v) for k, v in sets.items()}, "blank": total - len(set().union(*sets.values()))}


def at(rev: str) -> dict:
    """{module: kinds} of the package's .py files at a revision."""
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:{PACKAGE}"], check=True, capture_output=True,
                           text=True).stdout.split()
    return {n: kinds(subprocess.run(["git", "show", f"{rev}:{PACKAGE}/{n}"], check=True, capture_output=True,
                                    text=True).stdout) for n in names if n.endswith(".py")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="2c9f01c", help="the package before issue 23 (the parent of ffbc636)")
    ap.add_argument("--head", default="HEAD")
    ap.add_argument("--out", default="bench/out/analysis_lines.json")
    args = ap.parse_args()
    args.base, args.head = (subprocess.run(["git", "rev-parse", "--short", r], check=True, capture_output=True,
                                           text=True).stdout.strip() for r in (args.base, args.head))
    base, head = at(args.base), at(args.head)
    cols = ("total", "code", "docstring", "comment", "blank")
    print(f"| module | {' | '.join(f'{c} {args.base} → {args.head}' for c in cols)} |")
    print("|---|" + "---|" * len(cols))
    sums = {rev: {c: 0 for c in cols} for rev in ("base", "head")}
    for name in sorted(set(base) | set(head)):
        b, h = base.get(name), head.get(name)
        for rev, k in (("base", b), ("head", h)):
            for c in cols:
                sums[rev][c] += k[c] if k else 0
        print(f"| {name} | " + " | ".join(f"{b[c] if b else '—'} → {h[c] if h else '—'}" for c in cols) + " |")
    print("| **all** | " + " | ".join(f"{sums['base'][c]} → {sums['head'][c]}" for c in cols) + " |")
    other = {c: sum(head[n][c] for n in OTHER_ISSUES if n in head) for c in cols}
    sums["head_less_other_issues"] = {c: sums["head"][c] - other[c] for c in cols}
    print(f"| **less {', '.join(sorted(OTHER_ISSUES))}** | "
          + " | ".join(f"{sums['base'][c]} → {sums['head_less_other_issues'][c]}" for c in cols) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"base": args.base, "head": args.head, "modules": {"base": base, "head": head},
                                          "sums": sums}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
