"""What issue 23.3's line count could lose, feature by feature: for each optional feature of the analysis
package, the whole top-level units (functions, classes, methods, constants) that serve it alone, so that
deleting the feature deletes them; their lines counted from git at a revision as `analysis_lines.py` counts
(with each unit's comment block above it and the blank lines after it, which go with it). Lines inside
functions that other features share (a branch, a keyword, a dict key) are not counted: the menu is a floor.
Which units serve a feature alone was read by hand, their callers grepped across src/, workflow/, bench/ and
tests/ (2026-12-07); a unit another kept feature calls is not listed. Against it: the package's growth since
issue 23 began, from `analysis_lines.py`.

    python bench/drop_menu.py [--rev HEAD] [--out bench/out/drop_menu.json]
"""

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_lines import OTHER_ISSUES, PACKAGE, at, line_sets  # noqa: E402

# feature: (its units as "module:Name" or "module:Class.method", what a user loses with it)
FEATURES = {
    "per-B argmin and spline estimators": (
        ["optima:SPLINE_SE_DRAWS", "optima:_spline"],
        "config analysis.estimator and --estimator (parabola only)"),
    "per-B bootstrap CI of β": (
        ["fit:_bootstrap", "locators:LocalFit.draw_log10", "plots:REF_STYLE", "plots:beta_bootstrap"],
        "analysis.bootstrap/seed, --bootstrap/--seed, beta_bootstrap.png, the t-vs-bootstrap clause; "
        "fit.json's bootstrap keys become null"),
    "per-B bending forms (McCandlish, surge on the per-B optima)": (
        ["forms:PREFER_DCHI2", "forms:UNDECIDED_DCHI2", "forms:WEAK_DCHI2", "forms:GOF_P", "forms:_shape",
         "forms:local_slope", "forms:_profile", "forms:_interval", "forms:fit_bending", "forms:gof_p",
         "forms:prefer", "verdict:FORM_NAMES", "verdict:plausible_bend", "verdict:_per_b_form_view",
         "report:forms_table"],  # not forms.compare (it also gives the kept per-B power law), nor close_second
        "the report's form comparison, the per-B form clauses and plot bands, the B_noise clause beside the "
        "gradient noise's B_simple, the per-B fallback's no-form decline; fit.json forms.mccandlish/surge "
        "vanish; horizons' B_noise proxy must move to the joint model's forms"),
    "per-B SE floors (shape bias, unseen side)": (
        ["optima:FLOOR_STEPS", "optima:side_unseen", "optima:cubic_vertex", "optima:shape_bias",
         "optima:shape_floor", "optima:unseen_floor", "optima:total_se", "locators:identifiable"],
        "narrower per-B CIs, so more 'not decided (estimator-dependent)'; shape_bias_log10 becomes null"),
    "bend: slope CIs given the bend test (selective)": (
        ["surface:_selective_ci"], "a bend answer's slopes read with Wald CIs"),
    "bend: jackknife of the slopes": (
        ["surface:_Model.without", "surface:_Model.shifted", "surface:_jackknife", "report:_jackknife_text"],
        "bend.slopes.jackknife becomes null; slope CIs narrower where a batch size sits apart"),
    "bend: read about a smooth curve (quadratic)": (
        ["surface:_Smooth", "surface:_smooth"], "s2_smooth; slope CIs wider on smooth bends"),
    "bend: the broken line's own lack of fit": (
        ["surface:_vertex_bend_p"], "bend.lack_of_fit (and the smooth reading needs it)"),
    "open-edge rule (an optimum past the grid)": (
        ["surface:_open_edge", "surface:slide", "verdict:_open_edge_answer", "verdict:_edge_extreme",
         "verdict:_open_edge_where", "verdict:edge_changes", "verdict:hypotheses_in"],
        "the open-edge decline and caveat; surface.open_edge becomes null"),
    "σ ∝ B^ω in the joint model": (
        ["surface:TREND_P", "surface:_Model.sigma_trend", "surface:_Model.weigh", "surface:_omega_widen",
         "report:_trend_text"],
        "surface.sigma_trend becomes null; coverage falls where σ changes with B (0.910 → 0.885, bench/README)"),
    "per-B σ model (Q test, trend with shrinkage)": (
        ["loss_noise:HETEROGENEITY_P", "loss_noise:MIN_BATCH_SIZES", "loss_noise:_log_var", "loss_noise:_wls",
         "loss_noise:_tau2", "loss_noise:_trend"],
        "one pooled σ for the per-B optima and the band; noise_by_batch always per_batch: false"),
    "the joint model's bending forms": (
        ["surface:FORM_MARGIN", "surface:B_NOISE_REACH", "surface:_vertex_profile_ci", "surface:fit_forms",
         "surface:_form_ci", "surface:_form_start"],
        "B_noise from every run and the 'form' decline; do not drop with the per-B forms unless B_noise goes"),
    "fit.ols and noise_share (no product reader)": (
        ["fit:ols", "locators:LocalFit.noise_share"], "nothing a user reads; noise_share becomes null"),
}


def spans(src: str) -> dict:
    """{"Name" or "Class.method": (first line, last line)} of the module's top-level units and methods."""
    out = {}
    for node in ast.parse(src).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = (min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno)
            if isinstance(node, ast.ClassDef):
                out.update({f"{node.name}.{m.name}": (m.lineno, m.end_lineno) for m in node.body
                            if isinstance(m, ast.FunctionDef)})
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(t, ast.Name):
                    out[t.id] = (node.lineno, node.end_lineno)
    return out


def unit_lines(lines: list, first: int, last: int) -> set:
    """The unit's lines (1-based) with its comments and the blank lines after it: the comment block right above
    it, unless that block continues the trailing comment of the code line above the block (a constant's
    rationale run on), and such a run-on of its own last line's comment."""
    def comment(n):
        return lines[n - 1].lstrip().startswith("#")

    def trailing(n):
        return not comment(n) and "  #" in lines[n - 1]

    top = first
    while top > 1 and comment(top - 1):
        top -= 1
    if not (top > 1 and trailing(top - 1)):
        first = top
    if trailing(last):
        while last < len(lines) and comment(last + 1):
            last += 1
    while last < len(lines) and not lines[last].strip():
        last += 1
    return set(range(first, last + 1))


def menu(rev: str) -> list:
    """One row per feature: its units' lines (total, code) at rev."""
    sources = {}
    rows = []
    for feature, (units, loss) in FEATURES.items():
        total, code = 0, 0
        for unit in units:
            module, name = unit.split(":")
            if module not in sources:
                src = subprocess.run(["git", "show", f"{rev}:{PACKAGE}/{module}.py"], check=True,
                                     capture_output=True, text=True).stdout
                sources[module] = (src.splitlines(), spans(src), line_sets(src)["code"])
            lines, where, code_lines = sources[module]
            if name not in where:
                raise SystemExit(f"drop_menu: {unit} not found in {module}.py at {rev}")
            got = unit_lines(lines, *where[name])
            total, code = total + len(got), code + len(got & code_lines)
        rows.append({"feature": feature, "units": units, "lines": total, "code": code, "loses": loss})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--base", default="2c9f01c", help="the package before issue 23 (as analysis_lines.py)")
    ap.add_argument("--out", default="bench/out/drop_menu.json")
    args = ap.parse_args()
    args.base, args.rev = (subprocess.run(["git", "rev-parse", "--short", r], check=True, capture_output=True,
                                          text=True).stdout.strip() for r in (args.base, args.rev))
    rows = menu(args.rev)
    size = {rev: {c: sum(k[c] for n, k in at(rev).items() if n not in OTHER_ISSUES) for c in ("total", "code")}
            for rev in (args.base, args.rev)}
    print("| feature | lines (code) | what a user loses |\n|---|---|---|")
    for r in rows:
        print(f"| {r['feature']} | {r['lines']} ({r['code']}) | {r['loses']} |")
    dropped = {c: sum(r["lines" if c == "total" else "code"] for r in rows) for c in ("total", "code")}
    print(f"| **all of them** | {dropped['total']} ({dropped['code']}) | |")
    for c in ("total", "code"):
        b, h = size[args.base][c], size[args.rev][c]
        print(f"{c}: {b} at {args.base} → {h} at {args.rev} (+{h - b}); every feature above dropped: {h - dropped[c]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rev": args.rev, "base": args.base, "size": size, "dropped": dropped,
                                          "rows": rows}, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
