"""Why the verdict declines ("not decided"), and what each rule behind it costs (issue 23).

The verdict tests no hypothesis when lr_opt(B) is not a power law by every account: a bending form the
joint model prefers (`untested = form`), its bend test (`bend`), a stability edge, a fall, or a
cross-check that disagrees; or when the hypotheses inside β's CI depend on where training breaks above
an unseen bowl bottom (`open_edge`, since 2026-12-05). Until 2026-12-05 the form account was the per-B
optima's form test (forms.py); with one seed and σ ∝ B^-½ it took the small batch sizes' noise for a bend
and left one inside cell "not decided" in 0.24 of sweeps. This judges, on the same draws as
bench/fit_accuracy.py (its cells, cell keys and rng; bootstrap 0, so only the bootstrap CI, not the
verdict, differs from its archives), the verdict under four variants, every other reason kept in order:
`joint` (now), `per_b` (the form account the per-B optima's preferred form), `none` (no form account)
and `no_open_edge` (no open-edge rule); how often each declines, rules the truth out, or names a wrong
single hypothesis, and the reasons behind `joint`. `--compare` picks the table: the form gates
(per_b → joint, none), the open-edge rule (no_open_edge → joint), or that rule's open batch sizes moved
apart, as since 2026-12-05, against moved together (open_edge_together → joint, no_open_edge).

    python bench/decline_reasons.py [--reps 50] [--reps-outside 100] [--compare form|open_edge|open_edge_apart]
                                    [--only CELLS]
                                    [--out bench/out/decline_reasons.json]
"""

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fit_accuracy import HYPOTHESES, cells, inside_draws, judge, outside_draws, pseudo_true_beta  # noqa: E402
from surface_constants import run_cells  # noqa: E402
from truths_outside import TRUTHS  # noqa: E402

from lrscale.analysis.fit import analyse, untested_reasons  # noqa: E402
from lrscale.analysis.surface import slide  # noqa: E402
from lrscale.analysis.verdict import holds  # noqa: E402

GATES = ("per_b", "joint", "none", "no_open_edge", "open_edge_together")  # joint: the verdict as it is


def _draws(cell, reps):
    """fit_accuracy's draws for this cell: (truth, seeds) outside the fit's family, else (kind, param,
    shape, seeds, flat, σ slope) at its σ of 0.01."""
    if len(cell) == 2:
        return outside_draws(*cell, reps)
    kind, param, shape, seeds, flat, slope = cell
    return inside_draws(kind, param, shape, seeds, 0.01, reps, flat, slope)


def _gated(r, gate) -> dict:
    """The result with `gate`'s verdict (fit.untested_reasons, one entry replaced): the form account the
    joint model's (joint, as now), the per-B optima's (per_b) or none; or no open-edge rule (no_open_edge),
    or the open-edge rule as it was until 2026-12-05 (open_edge_together: every open B moved at once, the
    hypotheses inside the CI compared at the fit and there only)."""
    a = r["answer"]
    if a["estimator"] != "surface":
        return r
    swap = {"joint": {}, "per_b": {"form": r["beta"] is not None and r["preferred_form"] != "power_law"},
            "none": {"form": False}, "no_open_edge": {"open_edge": False},
            "open_edge_together": {"open_edge": _moved_together(r["surface"])}}[gate]
    reasons = [(why, swap.get(why, fires)) for why, fires in untested_reasons(r, a["disagreeing"], HYPOTHESES)]
    return {**r, "answer": {**a, "untested": next((why for why, fires in reasons if fires), None)}}


def _moved_together(joint) -> bool:
    """The open-edge rule until 2026-12-05: the hypotheses inside the CI at the fit against those inside it
    with every open B's lr_opt brought down at once (the sum of the shift range's two ends)."""
    edge = joint.get("open_edge")
    if not edge:
        return False
    net = sum(edge["shift_range"])
    moved = slide(joint["ci95"], net, net)
    return any(holds(joint["ci95"], h) != holds(moved, h) for h in HYPOTHESES)


def run(spec):
    cell, reps = spec
    reasons, judged = collections.Counter(), {g: [] for g in GATES}
    for sweep, lr_opt, seed in _draws(cell, reps):
        r = analyse(sweep, bootstrap=0, seed=seed)
        beta_true = cell[1] if cell[0] == "power_law" else pseudo_true_beta(lr_opt)
        surface_answers = r["answer"]["estimator"] == "surface"
        reasons[str(r["answer"]["untested"]) if surface_answers else "no joint fit (per-B answer)"] += 1
        for g in GATES:
            judged[g].append(judge(_gated(r, g), beta_true, True, lr_opt))
    share = lambda v, k: float(np.mean([j[k] for j in v]))  # noqa: E731
    return {"cell": " ".join(map(str, cell)), "reps": reps, "reasons": {k: v / reps for k, v in reasons.items()},
            **{f"{k}_{g}": share(judged[g], k) for g in GATES for k in ("declined", "ruled_out", "wrong_single")}}


COMPARE = {"form": ("per_b", "joint", "none"), "open_edge": ("no_open_edge", "joint", None),
           "open_edge_apart": ("open_edge_together", "joint", "no_open_edge")}


def markdown(rows, compare="form") -> str:
    """The table of one comparison: before → now (and a third variant in brackets), per cell."""
    before, now, third = COMPARE[compare]
    names = {"per_b": "per-B", "joint": "now" if compare.startswith("open_edge") else "joint", "none": "no gate",
             "no_open_edge": "no open-edge rule", "open_edge_together": "moved together"}
    arrow = f"{names[before]} → {names[now]}" + (f" ({names[third]})" if third else "")
    head = ["cell", "sweeps", "declined because (now, share of sweeps)", f"declined {arrow}",
            f"truth ruled out {names[before]} → {names[now]}", f"wrong single h. {arrow}"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        why = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["reasons"].items(), key=lambda kv: -kv[1]) if k != "None")
        pair = lambda k: f"{r[k + '_' + before]:.2f} → {r[k + '_' + now]:.2f}"  # noqa: E731
        more = lambda k: f" ({r[k + '_' + third]:.2f})" if third else ""  # noqa: E731
        out.append(f"| {r['cell']} | {r['reps']} | {why or '-'} | {pair('declined')}{more('declined')} | "
                   f"{pair('ruled_out')} | {pair('wrong_single')}{more('wrong_single')} |")
    return "\n".join(out)


def all_cells(reps, reps_outside):
    """fit_accuracy's inside cells (σ 0.01) and every out-of-family truth with 1 and 2 seeds."""
    inside = [((kind, param, shape, seeds, flat, slope), reps)
              for kind, param, shape, seeds, _, _, _, flat, slope in cells(reps, 0)]
    return inside + [((name, seeds), reps_outside) for name in TRUTHS for seeds in (1, 2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50, help="sweeps per inside cell")
    ap.add_argument("--reps-outside", type=int, default=100, help="sweeps per out-of-family cell")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compare", choices=sorted(COMPARE), default="form",
                    help="the table: the form gates (per-B → joint, no gate), the open-edge rule (without → with) or "
                         "its open batch sizes moved apart (moved together → now, no rule)")
    ap.add_argument("--only", default="", help="run only the cells whose name starts with one of these, comma-separated")
    ap.add_argument("--out", default="bench/out/decline_reasons.json")
    args = ap.parse_args()
    chosen = [c for c in all_cells(args.reps, args.reps_outside)
              if not args.only or any(" ".join(map(str, c[0])).startswith(k) for k in args.only.split(","))]
    run_cells(run, chosen, args, lambda rows: markdown(rows, args.compare), time.time())


if __name__ == "__main__":
    main()
