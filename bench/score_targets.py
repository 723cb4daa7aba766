"""Issue 23's targets scored on every benchmark cell under one stated reading, the sweeps accumulated
across runs (and sessions) for as long as the analysis package does not change.

Cells: bench/fit_accuracy.py's 40 inside cells (the old benchmark's: power laws, McCandlish, surge, a flat
column, σ falling with B) and its 18 outside cells (bench/truths_outside.py), each with 1 and 2 seeds, with
the same draws: sweep i of a cell here is sweep i of fit_accuracy's archive of that cell (bootstrap 0).
Each analysed sweep is one line of the store (JSONL), tagged with a version (a hash of the analysis
package's code, its defaults, the draws' code and this script's functions that make a line, docstrings left
out: a reworded docstring or a new reading of the table keeps the store; any other change starts a new one).
A run adds the sweeps [--start, --stop) of every chosen cell that the store lacks, round-robin in chunks so
an interrupted run leaves every cell about as far as the others; --table scores the store.

The reading (one per target, the same in every cell; shares with a Wilson 95% interval):
  ruled out       the verdict commits to an answer whose CI misses the truth. An answer is β with one CI
                  (scored against the true β, or the pseudo-true least-squares slope where lr_opt(B) is not
                  a power law) or, where lr_opt bends, the two halves' slopes with their CIs (scored
                  against the truth's own broken line through the batch sizes the model read:
                  fit_accuracy.slope_hits; either CI missing counts). "not decided" without committed
                  values (estimator-dependent, an edge, non-monotonic, a form without a bend, no β) rules
                  nothing out. Target ≤ 0.05 in every cell.
  decided         β or the two slopes were answered (a bend answer commits to values and is scored on
                  them, so it counts as decided, not as a decline). Target: not decided ≤ 0.20 on the
                  old benchmark's (inside) cells.
  coverage        the joint β CI holds the true β, over every sweep with a joint fit, whatever the
                  verdict did with it. Target 0.90–0.98 where lr_opt(B) is a power law (inside and out);
                  shown elsewhere (a pseudo-true β is an average, not the model's parameter).
  mean β error    joint β minus the truth, same sweeps. Target |·| ≤ 0.01 where lr_opt(B) is a power law.
  half-width      median joint β CI half-width over the median per-B optima's t-CI half-width (the
                  answer's estimator before issue 23, less the shared-shape corrections issue 23 deleted), over
                  the sweeps with both. Target ≤ 2 on the inside cells.
  wrong single    one hypothesis named as the only one inside the CI, and it is not within 0.02 of the
                  truth. Target ≤ 0.05 in every cell.
  per-B lr_opt    the per-B optima's lr_opt CIs holding the true lr_opt, pooled over included batch sizes
                  (the flat column's B = 512 left out). Target ≥ 0.85 in every cell.
A target is met (or not) at the point estimate once every chosen cell has ≥ 200 sweeps; before that it
is "provisional", with the cells that miss it so far. Every value comes with its 95% interval (Wilson for a
share of sweeps, t for the mean error, a bootstrap over sweeps for the half-width ratio and the pooled lr
coverage), and each missed target also lists the cells whose whole interval lies outside it ("beyond noise"):
at 200 sweeps a share's standard error is about 0.015, so a cell whose true rate sits on a bound (a 95% CI
that is exactly right rules the truth out in 5% of sweeps) misses the point reading half the time, and
among 58 cells some will. A second table pools the cells by world, loss shape and truth. Analysed with bootstrap 0: where no joint model
fits, the per-B fallback's answer is judged on its t-CI alone (the verdict reads its bootstrap CI too).
Run from the repository root (the store's path is relative).

    python bench/score_targets.py [--start 0] [--stop 200] [--chunk 20] [--cells SUBSTRING ...] [--workers 2]
                                  [--store bench/results/score_targets.jsonl]
    python bench/score_targets.py --table [--version HASH] [--out bench/results/score_targets.json]
"""

import argparse
import ast
import hashlib
import json
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
from fit_accuracy import _cell_name, cells, inside_draws, judge, outside_draws  # noqa: E402
from truths_outside import BATCH, TRUTHS, slope  # noqa: E402

from lrscale import config  # noqa: E402
from lrscale.analysis.fit import analyse  # noqa: E402

MIN_SWEEPS = 200
TARGETS = {  # name: (which cells, the column scored, the bounds a cell's value must lie within)
    "ruled out ≤ 0.05": ("every", "ruled_out", (-math.inf, 0.05)),
    "not decided ≤ 0.20": ("inside", "not_decided", (-math.inf, 0.20)),
    "joint β coverage 0.90–0.98": ("power law", "coverage", (0.90, 0.98)),
    "|mean joint β error| ≤ 0.01": ("power law", "mean_error", (-0.01, 0.01)),
    "joint / per-B half-width ≤ 2": ("inside", "half_width_ratio", (-math.inf, 2.0)),
    "wrong single ≤ 0.05": ("every", "wrong_single", (-math.inf, 0.05)),
    "per-B lr_opt coverage ≥ 0.85": ("every", "lr_coverage", (0.85, math.inf)),
}
N_BOOT = 1000  # resamples of a cell's sweeps for the intervals of the half-width ratio and the pooled lr coverage

RECORD_CODE = ("all_cells", "draws", "is_power_law", "ci_ends", "score", "run_chunk")  # this script's code behind a store line


def analysis_version() -> str:
    """A hash of what a stored line depends on: the analysis package's code (lrscale.analysis), the
    analysis settings' defaults, the draws and judging (truths_outside.py, fit_accuracy.py) and this
    script's functions that make a line (RECORD_CODE; the reading of the table is not in it), the code with
    docstrings left out (a reworded docstring keeps the store)."""
    digest = hashlib.sha256(json.dumps(config.defaults()["analysis"], sort_keys=True).encode())
    here = Path(__file__).resolve()
    for path in [*sorted((ROOT / "src" / "lrscale" / "analysis").glob("*.py")),
                 *(ROOT / "bench" / name for name in ("truths_outside.py", "fit_accuracy.py")), here]:
        tree = ast.parse(path.read_text())
        if path == here:
            tree.body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in RECORD_CODE]
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                body[0] = ast.Pass()
        digest.update(path.relative_to(ROOT).as_posix().encode() + ast.dump(tree).encode())
    return digest.hexdigest()[:12]


def all_cells() -> dict:
    """{cell id: spec}: fit_accuracy's inside cells, then its outside cells."""
    out = {}
    for spec in cells(1, 0):
        kind, param, shape, seeds = spec[:4]
        row = {"truth": kind, "param": param, "flat_column": spec[7], "sigma_slope": spec[8]}
        out[f"inside {_cell_name(row)} {shape} {seeds} seed(s)"] = ("inside", spec)
    for name in TRUTHS:
        for seeds in (1, 2):
            out[f"outside {name} {seeds} seed(s)"] = ("outside", (name, seeds))
    return out


def draws(world, spec, stop):
    """The cell's first `stop` sweeps, as fit_accuracy draws them: (sweep, true lr_opt, analyse's seed)."""
    if world == "inside":
        kind, param, shape, seeds, sigma, _, _, flat, falling = spec
        return inside_draws(kind, param, shape, seeds, sigma, stop, flat, falling)
    return outside_draws(*spec, stop)


def is_power_law(lr_opt) -> bool:
    """Whether a truth's lr_opt(B) is a power law over BATCH (its β then is the model's parameter)."""
    fit = np.polyfit(np.log(BATCH), np.log(lr_opt), 1)
    return bool(np.max(np.abs(np.polyval(fit, np.log(BATCH)) - np.log(lr_opt))) < 1e-9)


def ci_ends(ci) -> tuple:
    """A CI's two ends, an open one (None) as −∞ or +∞."""
    return (-math.inf if ci[0] is None else ci[0]), (math.inf if ci[1] is None else ci[1])


def score(r, lr_opt, flat) -> dict:
    """One analysed sweep under the reading above."""
    beta_true = slope(lr_opt)
    j = judge(r, beta_true, True, lr_opt)
    bend = "slope_missed" in j
    rec = {"answer": "slopes" if bend else "declined" if j["declined"] else "beta",
           "ruled_out": bool(j["slope_missed"] if bend else j["ruled_out"]), "wrong_single": bool(j["wrong_single"]),
           "why": r["answer"].get("untested") if r["answer"]["estimator"] == "surface" else
           (r["answer"].get("untested") or ("no beta" if r["beta"] is None else None))}
    s = r["surface"]
    if s["beta"] is not None:
        lo, hi = ci_ends(s["ci95"])
        rec.update(error=s["beta"] - beta_true, covered=bool(lo <= beta_true <= hi), half_width=(hi - lo) / 2)
    if r["beta"] is not None:
        rec["per_b_half_width"] = (r["ci95_t"][1] - r["ci95_t"][0]) / 2
    hits = [p["lr_opt_ci95"][0] <= t <= p["lr_opt_ci95"][1] for p, t in zip(r["per_batch"], lr_opt)
            if p["included"] and p["lr_opt_ci95"] and not (flat and p["batch_size"] == 512)]
    rec["lr_hits"], rec["lr_n"] = int(sum(hits)), len(hits)
    return rec


def run_chunk(job):
    """Analyse sweeps [start, stop) of one cell: a store line per sweep."""
    cell, (world, spec), start, stop, version = job
    flat = world == "inside" and spec[7]
    lines = []
    for i, (sweep, lr_opt, seed) in enumerate(draws(world, spec, stop)):
        if i < start:
            continue  # drawn, not analysed: the rng stream stays fit_accuracy's
        rec = score(analyse(sweep, bootstrap=0, seed=seed), lr_opt, flat)
        lines.append({"version": version, "cell": cell, "i": i, "power_law": is_power_law(lr_opt), **rec,
                      "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE")})  # None: OpenBLAS picks the kernel
    return lines


def read_store(path, version) -> dict:
    """{cell: {i: record}} of the store's lines at `version` (a sweep stored twice counts once)."""
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a run killed mid-line: that sweep is analysed again
                continue
            if rec["version"] == version:
                out.setdefault(rec["cell"], {})[rec["i"]] = rec
    return out


def jobs(chosen, store, start, stop, chunk, version) -> list:
    """Round-robin chunks of the sweeps the store lacks: every cell's first chunk, then every second..."""
    out = []
    for lo in range(start, stop, chunk):
        hi = min(lo + chunk, stop)
        for cell, spec in chosen.items():
            have = store.get(cell, {})
            missing = [i for i in range(lo, hi) if i not in have]
            if missing:
                out.append((cell, spec, missing[0], missing[-1] + 1, version))
    return out


def wilson(k, n) -> list:
    """The Wilson 95% interval of a share k/n (scipy's)."""
    return list(map(float, stats.binomtest(int(k), n).proportion_ci(method="wilson"))) if n else [None, None]


def _boot(recs, stat) -> list:
    """A percentile 95% interval of stat(records) over N_BOOT resamples of the cell's sweeps (a sweep's
    batch sizes stay together: they share its noise)."""
    rng = np.random.default_rng(0)
    vals = [stat([recs[k] for k in rng.integers(0, len(recs), len(recs))]) for _ in range(N_BOOT)]
    vals = [v for v in vals if v is not None]
    return np.percentile(vals, [2.5, 97.5]).tolist() if vals else [None, None]


def _mean_ci(xs) -> list:
    """The t 95% interval of a mean."""
    if len(xs) < 2:
        return [None, None]
    half = stats.t.ppf(0.975, len(xs) - 1) * np.std(xs, ddof=1) / math.sqrt(len(xs))
    return [np.mean(xs).item() - half, np.mean(xs).item() + half]


def _hw_ratio(recs):
    both = [r for r in recs if "error" in r and "per_b_half_width" in r]
    return (np.median([r["half_width"] for r in both]) / np.median([r["per_b_half_width"] for r in both])).item() \
        if both else None


def _lr_coverage(recs):
    n = sum(r["lr_n"] for r in recs)
    return sum(r["lr_hits"] for r in recs) / n if n else None


def summarize(cell, recs) -> dict:
    """One cell's values under the reading above (None where no sweep gives one), each with its 95% interval
    (`<column>_ci`): Wilson for a share of sweeps, t for the mean error, a bootstrap over sweeps for the
    half-width ratio and the pooled lr coverage."""
    n = len(recs)
    joint = [r for r in recs if "error" in r]
    shares = {"ruled_out": (recs, lambda r: r["ruled_out"]), "not_decided": (recs, lambda r: r["answer"] == "declined"),
              "slope_answers": (recs, lambda r: r["answer"] == "slopes"), "coverage": (joint, lambda r: r["covered"]),
              "wrong_single": (recs, lambda r: r["wrong_single"])}
    row = {"cell": cell, "n": n, "inside": cell.startswith("inside"), "power_law": recs[0]["power_law"]}
    for col, (pool, pred) in shares.items():
        k = sum(map(pred, pool))
        row[col], row[col + "_ci"] = (k / len(pool) if pool else None), wilson(k, len(pool))
    errors = [r["error"] for r in joint]
    row["mean_error"], row["mean_error_ci"] = (np.mean(errors).item() if errors else None), _mean_ci(errors)
    row["half_width_ratio"], row["half_width_ratio_ci"] = _hw_ratio(recs), _boot(recs, _hw_ratio)
    row["lr_coverage"], row["lr_coverage_ci"] = _lr_coverage(recs), _boot(recs, _lr_coverage)
    row["declined_why"] = {}
    for r in recs:
        if r["answer"] == "declined":
            row["declined_why"][r["why"] or "—"] = row["declined_why"].get(r["why"] or "—", 0) + 1
    return row


def pooled(rows, store) -> list:
    """The cells' sweeps pooled by world, loss shape (inside) and truth (power law or bending): where a target
    sits for a family of cells, at 4-12x one cell's sweeps (the bootstrap intervals resample sweeps across
    the pooled cells, not within each)."""
    groups = {}
    for r in rows:
        shape = "" if not r["inside"] else " asym" if " asym " in r["cell"] else " sym"
        key = f"pooled {'inside' if r['inside'] else 'outside'}{shape}{'' if r['power_law'] else ' bending'}"
        groups.setdefault(key, (r["inside"], []))[1].extend(store[r["cell"]].values())
    return [{**summarize(k, recs), "inside": inside} for k, (inside, recs) in sorted(groups.items())]


def covers(scope, row) -> bool:
    return scope == "every" or (scope == "inside" and row["inside"]) or (scope == "power law" and row["power_law"])


def verdicts(rows, n_cells) -> dict:
    """Each target: met / not met / provisional (some of the n_cells chosen have no or too few sweeps), the
    cells whose value misses it (`missed`, the stated reading) and those whose whole 95% interval lies
    outside it (`missed_beyond_noise`: at 200 sweeps a share's standard error is about 0.015, so a cell whose
    true rate sits on a bound misses the point reading half the time)."""
    out = {}
    short = len(rows) < n_cells or min((r["n"] for r in rows), default=0) < MIN_SWEEPS
    for name, (scope, col, (lo, hi)) in TARGETS.items():
        mine = [r for r in rows if covers(scope, r) and r[col] is not None]
        missed = [r["cell"] for r in mine if not lo <= r[col] <= hi]
        beyond = [r["cell"] for r in mine if None not in r[col + "_ci"] and (r[col + "_ci"][1] < lo or r[col + "_ci"][0] > hi)]
        out[name] = {"cells": len(mine), "missed": missed, "missed_beyond_noise": beyond,
                     "status": "provisional" if short else "not met" if missed else "met"}
    return out


def fmt(v, spec=".3f") -> str:
    return "—" if v is None else format(v, spec)


def markdown(rows, met) -> str:
    head = ["cell", "n", "ruled out [95%]", "not decided [95%]", "slope answers [95%]", "joint cov. [95%]",
            "mean err. [95%]", "hw joint/per-B [95%]", "wrong single [95%]", "per-B lr cov. [95%]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ci = lambda k: "[" + ", ".join(fmt(v, ".2f") for v in r[k + "_ci"]) + "]"  # noqa: E731
        lines.append("| " + " | ".join([r["cell"] + (" (power law)" if r["power_law"] else ""), str(r["n"]),
                                         f"{fmt(r['ruled_out'], '.3f')} {ci('ruled_out')}",
                                         f"{fmt(r['not_decided'], '.2f')} {ci('not_decided')}",
                                         f"{fmt(r['slope_answers'], '.2f')} {ci('slope_answers')}",
                                         f"{fmt(r['coverage'])} {ci('coverage')}",
                                         f"{fmt(r['mean_error'], '+.4f')} [{fmt(r['mean_error_ci'][0], '+.3f')}, "
                                         f"{fmt(r['mean_error_ci'][1], '+.3f')}]",
                                         f"{fmt(r['half_width_ratio'], '.2f')} {ci('half_width_ratio')}",
                                         f"{fmt(r['wrong_single'], '.3f')} {ci('wrong_single')}",
                                         f"{fmt(r['lr_coverage'])} {ci('lr_coverage')}"]) + " |")
    lines.append("")
    for name, v in met.items():
        missed = f"; missed by: {'; '.join(v['missed'])}" if v["missed"] else ""
        beyond = f"; beyond noise (95% interval wholly outside): {'; '.join(v['missed_beyond_noise']) or 'none'}" \
            if v["missed"] else ""
        lines.append(f"- **{v['status']}** {name} ({v['cells']} cells){missed}{beyond}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=MIN_SWEEPS)
    ap.add_argument("--chunk", type=int, default=20)
    ap.add_argument("--cells", nargs="*", help="substrings: only cells whose id holds one")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--store", default="bench/results/score_targets.jsonl")
    ap.add_argument("--table", action="store_true", help="score the store (no new sweeps) and exit")
    ap.add_argument("--out", default="bench/out/score_targets.json")
    ap.add_argument("--version", help="with --table: score the store's lines of this analysis version (an archived "
                                      "run) instead of the current code's")
    args = ap.parse_args()
    if args.version and not args.table:
        sys.exit("score_targets.py: --version: only with --table (new sweeps are analysed by the current code)")
    version, store_path = args.version or analysis_version(), Path(args.store)
    chosen = {c: s for c, s in all_cells().items() if not args.cells or any(k in c for k in args.cells)}
    if not chosen:
        sys.exit(f"score_targets.py: --cells: no cell id holds any of {args.cells}; ids: {', '.join(all_cells())}")
    if not args.table:
        todo = jobs(chosen, read_store(store_path, version), args.start, args.stop, args.chunk, version)
        t0 = time.time()
        store_path.parent.mkdir(parents=True, exist_ok=True)
        with Pool(args.workers) as pool, store_path.open("a") as out:
            for k, lines in enumerate(pool.imap_unordered(run_chunk, todo)):
                out.write("".join(json.dumps(line) + "\n" for line in lines))
                out.flush()  # a killed run keeps every chunk it finished
                print(f"{lines[0]['cell']}: sweeps {lines[0]['i']}–{lines[-1]['i']} ({k + 1}/{len(todo)}, "
                      f"{time.time() - t0:.0f} s)", flush=True)
    store = read_store(store_path, version)
    rows = [summarize(c, list(store[c].values())) for c in chosen if store.get(c)]
    met = verdicts(rows, len(chosen))
    print(markdown(rows, met))
    groups = pooled(rows, store)
    print("\n" + markdown(groups, {}).rstrip())
    print(f"(analysis version {version}; {sum(r['n'] for r in rows)} sweeps in {len(rows)} of {len(chosen)} cells)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"version": version, "min_sweeps": MIN_SWEEPS, "targets": met, "rows": rows,
                                          "pooled": groups},
                                         indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
