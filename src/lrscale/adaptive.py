"""Adaptive rounds: after each round, plan the next one from every run so far.

Round 1 is the config's grid. `rounds` is a ceiling, not a schedule: every later round plans, per
batch size and from the fit's own per-B result, until each B is bracketed and identifiable:
  edge (optimum not bracketed)  add up to two lrs beyond the edge, or between the best lr and a
                                diverged neighbour, until bracketed (at most `extend_edges` per B
                                over the whole sweep). Their spacing starts at `step_decades` and
                                doubles (up to a decade) while the loss keeps falling steeply at that edge
                                (`_edge_step`);
  not yet re-centred            re-centre: len(seeds_per_point) lrs 1.2 grid steps apart
                                (`spacing_decades`) around lr_opt, most runs on the sides (wide,
                                not finer: a finer bracket pins the vertex worse); around the best
                                lr tried when the fit flags it flat (its vertex is not pinned);
  re-centred, not identifiable  (flat, vertex outside its bracket, no SE) reseed: the same pattern
                                again, fresh seeds, around the best lr (flat) or lr_opt: more runs
                                where they resolve the curvature (MAX_RESEEDS rounds at most);
  re-centred and identifiable   nothing; out of extensions: nothing (said so).
Extensions come first, then re-centring, then reseeding, in batch-size order, until `max_runs` (all
rounds) is spent; what the budget or the last round leaves open is named in the plan log and in
fit.json's `rounds` block. Planned lrs are snapped to their run name's precision
(config.LR_DECIMALS), so an lr IS its name and two plans can never disagree about it; a planned lr
whose name is already run at that B reuses it with fresh seeds. The plan is a pure function of the
runs and the earlier plans, so a re-run, a crash or a SLURM requeue plans exactly the same points.
"""

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from . import config
from .analysis import locators, loss_noise, optima
from .analysis.names import EDGE, FLAT, INSUFFICIENT
from .analysis.sweep_table import Sweep, from_runs, set_grid  # noqa: F401
from .errors import UserError
from .fileio import atomic_write_text
from .plans import annotate, open_flags, read_plan  # noqa: F401  (annotate, read_plan: re-exported)

MAX_EXTEND_PER_ROUND = 2  # lrs added beyond one edge in one round
# The extension step grows while the loss keeps falling steeply at the edge. Steep: the
# loss fell over each of the last two steps toward the edge, and over the last one, per decade, by
# more than STEEP_SLOPE_RATIO of the step before, with a margin of STEEP_NOISE_Z SDs of that
# difference (the fit's sigma over each mean's runs; a margin within the noise says nothing). On a
# parabola in log lr the fall per decade is proportional to the distance from the step's middle to
# the vertex, so with equal steps h a ratio of 2/3 means the vertex is still at least 1.5 h beyond
# the edge: a doubled step's first new lr (2h) lands at most h/2 past it, bracketing it rather than
# leaping over it (1/2 would allow 1.5 h past a vertex the base step would have bracketed). A curve
# already bending over keeps extend_step_decades.
STEEP_SLOPE_RATIO = 2 / 3
STEEP_NOISE_Z = 1.0
STEP_GROWTH = 2.0  # doubles per round while steep ...
# ... up to a decade (or extend_step_decades if larger): runs diverge about a decade above the
# optimum (bench/fit_accuracy.py's surfaces: 1.25), so a wider jump from a still-falling edge would
# often land there and spend an extension on a midpoint. Two 1-decade lrs a round still reach
# 2 decades past the edge per round.
MAX_STEP_DECADES = 1.0
MAX_RESEEDS = 2  # reseed rounds per batch size: a truly flat loss would otherwise take every round's budget


def settings(cfg: dict) -> dict:
    """The sweep's adaptive section (schema defaults filled)."""
    return cfg["sweep"]["adaptive"]


def snap(lr: float) -> float:
    """The lr its run name says (LR_DECIMALS decimals): planned lrs are exactly their names."""
    return float(config.lr_name(lr))


def _no_history() -> dict:
    return {"extended": set(), "recentred": False, "reseeded": set()}


def _history(plans: list[dict]) -> dict:
    """Per batch size, from the earlier plans: lrs added by extension, whether re-centred, the rounds
    that reseeded it."""
    hist = {}
    for plan in plans:
        for p in plan["points"]:
            h = hist.setdefault(p["batch_size"], _no_history())
            if p["reason"].startswith("extend"):
                h["extended"].add(p["lr"])
            elif p["reason"].startswith("recenter"):
                h["recentred"] = True
            elif p["reason"].startswith("reseed"):
                h["reseeded"].add(plan["round"])
    return hist


def _mean_loss(row: dict) -> np.ndarray:
    """A fit row's seed-mean losses, a diverged lr (null in fit.json) as NaN."""
    return np.array([math.nan if v is None else v for v in row["mean_loss"]], float)


def _edge_step(row: dict, side: int, base: float) -> tuple[float, str]:
    """Decades between the lrs added beyond an edge this round (side +1: above the largest lr, -1:
    below the smallest) and why it grew: `base`, or STEP_GROWTH x the last step at that edge (at
    most max(base, MAX_STEP_DECADES)) while the loss keeps falling steeply toward the edge."""
    x = side * np.log10(np.asarray(row["lrs"], float))
    loss = _mean_loss(row)
    runs = np.asarray(row.get("runs_per_lr") or np.ones(len(x)), float)
    keep = np.isfinite(loss)
    order = np.argsort(x[keep])  # toward the edge: the edge's lr is last
    x, loss, runs = x[keep][order], loss[keep][order], runs[keep][order]
    if len(x) < 3:
        return base, ""
    h0, h1 = x[-2] - x[-3], x[-1] - x[-2]
    falls = loss[-3] - loss[-2], loss[-2] - loss[-1]
    slopes = falls[0] / h0, falls[1] / h1
    # SD of slopes[1] - r slopes[0] = L[-2] (1/h1 + r/h0) - L[-1]/h1 - r L[-3]/h0, each mean sigma/sqrt(runs)
    coef = np.array([STEEP_SLOPE_RATIO / h0, 1 / h1 + STEEP_SLOPE_RATIO / h0, 1 / h1])
    sigma = row.get("noise_sigma") or 0.0  # no estimate: the slopes alone decide
    sigma = sigma if math.isfinite(sigma) else 0.0
    sd = sigma * math.sqrt(float(np.sum(coef**2 / runs[-3:])))
    if min(falls) <= 0 or slopes[1] - STEEP_SLOPE_RATIO * slopes[0] <= STEEP_NOISE_Z * sd:
        return base, ""
    step = min(max(STEP_GROWTH * (x[-1] - x[-2]), base), max(base, MAX_STEP_DECADES))
    if step <= base:
        return base, ""
    return step, (f"step {step:.3g} decades: the loss still fell {slopes[1]:.3g}/decade over the last "
                  f"{x[-1] - x[-2]:.2g} decades ({slopes[0]:.3g}/decade the step before)")


def _extension_lrs(row: dict, step: float, grow=True) -> tuple[list[float], str]:
    """lrs that move toward bracketing an unbracketed optimum: beyond the edge tried (`step`
    decades apart, grown by `_edge_step`), or between the best lr and a diverged neighbour; and
    why the step grew ("" when it did not)."""
    lrs = row["lrs"]
    mean = _mean_loss(row)
    finite = [i for i, v in enumerate(mean) if math.isfinite(v)]
    if not finite:  # every lr diverged: go below the smallest
        return optima.lrs_to_bracket(lrs, 0, -1, True, step, MAX_EXTEND_PER_ROUND), ""
    i = min(finite, key=lambda j: mean[j])
    where = optima.unbracketed(np.isfinite(mean), i)
    if where is not None:
        side, beyond = where
        h, why = _edge_step(row, side, step) if beyond and grow else (step, "")
        return optima.lrs_to_bracket(lrs, i, side, beyond, h, MAX_EXTEND_PER_ROUND), why
    if len(finite) < 3:  # bracketed by finite points but too few: widen on the low (safe) side
        return [lrs[finite[0]] / 10**step], ""
    return [], ""


def _new_seeds(sweep: Sweep, b, lr, k: int, taken: set, prefer=()) -> list[int]:
    """k seeds not yet run (or planned) at (b, lr): those of `prefer` first, then the lowest free."""
    used = set(taken)
    if b in sweep.lrs:
        for j, have in enumerate(sweep.lrs[b]):
            if config.lr_name(have) == config.lr_name(lr):
                used |= {s for s, ran in zip(sweep.seeds, sweep.ran_mask(b)[:, j]) if ran}
    out = [s for s in prefer if s not in used][:k]
    used |= set(out)
    s = 0
    while len(out) < k:
        if s not in used:
            out.append(s)
        s += 1
    return out


def _point(b, lr, seed, r, reason) -> dict:
    return {"batch_size": b, "lr": lr, "seed": seed, "name": config.run_name(b, lr), "round": r, "reason": reason}


def known_lrs(cfg: dict, sweep: Sweep) -> dict:
    """name -> exact lr of every lr already in the sweep (config grid and runs so far)."""
    known = {config.lr_name(lr): float(lr) for lr in cfg["sweep"]["lrs"]}
    for lrs in sweep.lrs.values():
        known.update({config.lr_name(lr): float(lr) for lr in lrs})
    return known


def resolve_lr(lr: float, known: dict) -> float:
    """The lr a planned value becomes: an lr already named the same (same name, same run), else
    the value snapped to its name. Refuses an lr too small to have a name of its own."""
    if snap(lr) == 0.0:
        raise UserError(f"adaptive plan: lr {lr:.3g} formats as {config.lr_name(lr)} in run names; "
                        f"expected lrs >= {0.5 * 10**-config.LR_DECIMALS:g} (extend_edges went below the naming precision)")
    return known.get(config.lr_name(lr), snap(lr))


RECENTER_STEPS = 1.2  # default re-centring spacing, in grid steps (bench/adaptive_design.py chose it)


def recenter_spacing(cfg: dict) -> float:
    """Decades between re-centred lrs: the configured value, else RECENTER_STEPS grid steps."""
    given = settings(cfg)["recenter"]["spacing_decades"]
    return given if given is not None else RECENTER_STEPS * optima.spacing(sorted(cfg["sweep"]["lrs"]))


def _away_from_divergence(lrs, centre: float, row: dict) -> list:
    """(lr, runs) around `centre` moved inside the nearest lr that diverged on either side (halfway
    from the centre to it): a run there would be lost, and with it the side that pins the vertex."""
    diverged = row.get("diverged_lrs") or []
    hi = min((d for d in diverged if d > centre), default=math.inf)
    lo = max((d for d in diverged if d < centre), default=0.0)
    return [(math.sqrt(centre * hi) if lr >= hi else math.sqrt(centre * lo) if lr <= lo else lr, k) for lr, k in lrs]


def _around(centre: float, row: dict, a: dict, spacing: float) -> list:
    """The re-centring pattern: len(seeds_per_point) lrs `spacing` decades apart around `centre`,
    seeds_per_point runs each, kept inside a diverged lr."""
    runs = a["recenter"]["seeds_per_point"]
    mid = (len(runs) - 1) / 2
    return _away_from_divergence([(centre * 10 ** (spacing * (j - mid)), k) for j, k in enumerate(runs)], centre, row)


def _unresolved(row: dict) -> str | None:
    """Why a bracketed batch size's optimum is not identifiable yet (a flag that keeps it out of the
    fit: flat, clipped, no_noise), None when it is."""
    return "; ".join(f"{k}: {v}" for k, v in open_flags(row).items()) or None


def best_lr(row: dict) -> float:
    """The lr with the lowest mean loss: a flat row's vertex is not pinned (SE above a grid step, or
    no minimum), the lowest measured loss is."""
    return float(row["lrs"][optima.best_index(_mean_loss(row))])


def _extend(row: dict, hist: dict, a: dict) -> tuple[str, list, str]:
    """(action, [(lr, None)], why) for an unbracketed optimum: lrs beyond its edge while extensions last."""
    left = a["extend_edges"] - len(hist["extended"])
    lrs, grew = _extension_lrs(row, a["extend_step_decades"])
    if grew and any(snap(lr) == 0.0 for lr in lrs):  # a grown step below the names' precision: the base one
        lrs, grew = _extension_lrs(row, a["extend_step_decades"], grow=False)
    lrs = lrs[: max(left, 0)]
    if not lrs:
        return "unbracketed", [], f"not bracketed and its {a['extend_edges']} extension(s) are spent"
    flag = row["flags"].get(EDGE) or row["flags"][INSUFFICIENT]
    why = f"{flag.split('; add lr')[0]}; adds lr {', '.join(f'{lr:.3g}' for lr in lrs)}"
    why += f" ({grew})" if grew else ""
    return "extend", [(lr, None) for lr in lrs], why


def _wanted(row: dict, hist: dict, a: dict, spacing: float) -> tuple[str, list[tuple[float, int]], str]:
    """(action, [(lr, runs)], why) for one batch size's fit row: extend an edge; re-centre once; then,
    while it is not identifiable, reseed at and around its best lr; else nothing."""
    flags = row["flags"]
    if EDGE in flags or INSUFFICIENT in flags:
        return _extend(row, hist, a)
    open_ = _unresolved(row)
    if hist["recentred"] and not open_:
        return "done", [], "bracketed and identifiable, already re-centred"
    flat = FLAT in flags  # often just too few runs so far: more, where it matters, may resolve it
    centre = best_lr(row) if flat else row["lr_opt"]
    lrs = _around(centre, row, a, spacing)
    if not hist["recentred"]:
        return "recenter", lrs, (f"flat so far ({flags['flat']}); re-centred on its best lr {centre:.3g}" if flat
                                 else f"re-centred on lr_opt {centre:.3g}")
    if len(hist["reseeded"]) >= MAX_RESEEDS:  # a loss that does not depend on lr stays flat: stop paying for it
        return "unresolved", [], f"still not identifiable after {MAX_RESEEDS} reseeds ({open_}); no more runs planned"
    where = "its best lr" if flat else "lr_opt"
    return "reseed", lrs, (f"still not identifiable after re-centring ({open_}); fresh seeds at and around {where} "
                           f"{centre:.3g}")


def _resolved(b, action, lrs, known, notes) -> list:
    """Planned (lr, runs) as they will run: snapped to the name's precision or merged with an lr of
    the same name; an lr too small to be named is dropped, with a note."""
    out = []
    for lr, k in lrs:
        if snap(lr) == 0.0:
            notes.append(f"B={b}: {action} lr {lr:.3g} dropped: below the run names' precision "
                         f"({config.LR_DECIMALS} decimals)")
            continue
        got = resolve_lr(lr, known)
        if config.lr_name(lr) in known:
            notes.append(f"B={b}: {action} lr {lr:.4g} lands on lr {got:g}, already in the sweep: adds runs there")
        elif abs(math.log10(got / lr)) > 0.05:
            notes.append(f"B={b}: {action} lr {lr:.4g} runs as {got:g} (the run names' {config.LR_DECIMALS} decimals)")
        out.append((got, k))
    return out


PRIORITY = {"extend": 0, "recenter": 1, "reseed": 2}  # the order the budget is spent in: bracket first


def plan_round(cfg: dict, r: int, sweep: Sweep, plans: list[dict]) -> dict:
    """Round r's plan (r >= 2) from every run so far (`sweep`) and the earlier plans (rounds 2..r-1)."""
    a = settings(cfg)
    used = sum(int(sweep.counts(b).sum()) for b in sweep.batch_sizes)
    left = math.inf if a["max_runs"] is None else a["max_runs"] - used
    hist, known, spacing = _history(plans), known_lrs(cfg, sweep), recenter_spacing(cfg)
    set_grid(sweep, cfg["sweep"]["lrs"])
    located, _ = locators.locate_all(sweep, loss_noise.of_sweep(sweep), cfg["analysis"]["estimator"],
                                     include_edge=False)  # the fit's own per-B optima and flags
    rows = {o.batch_size: o.row() for o in located}
    actions, wanted, notes = {}, [], []
    for b in cfg["sweep"]["batch_sizes"]:
        action, lrs, why = _wanted(rows[b], hist.get(b) or _no_history(), a, spacing)
        lrs = _resolved(b, action, lrs, known, notes)
        if action == "extend" and not lrs:
            action, why = "unbracketed", f"{why}; but those lrs are below the run names' precision"
        # open: not bracketed and identifiable before this round's runs (a re-centre of a good optimum is not)
        is_open = action in ("extend", "unbracketed", "reseed") or _unresolved(rows[b]) is not None
        actions[b] = {"action": action, "why": why, "lr_opt": rows[b]["lr_opt"], "open": is_open}
        wanted += [(PRIORITY[action], b, lr, k or len(cfg["sweep"]["seeds"]), action) for lr, k in lrs]
    points, taken = [], {}
    for _, b, lr, k, action in sorted(wanted, key=lambda w: w[0]):  # extensions first (stable: B order)
        prefer = cfg["sweep"]["seeds"] if action == "extend" else ()  # an extension continues the grid
        seeds = _new_seeds(sweep, b, lr, k, taken.setdefault((b, config.lr_name(lr)), set()), prefer)
        taken[(b, config.lr_name(lr))] |= set(seeds)
        points += [_point(b, lr, s, r, f"{action}: {actions[b]['why']}") for s in seeds]
    cut = max(len(points) - max(left, 0), 0) if math.isfinite(left) else 0
    points, dropped = points[: len(points) - cut], points[len(points) - cut :]
    cut_by_b = {str(b): sum(p["batch_size"] == b for p in dropped) for b in cfg["sweep"]["batch_sizes"]}
    return {"round": r, "grid_lrs": sorted(cfg["sweep"]["lrs"]), "points": points, "notes": notes,
            "per_batch": {str(b): v for b, v in actions.items()},
            "budget": {"max_runs": a["max_runs"], "runs_before": used, "planned": len(points), "not_planned": cut,
                       "not_planned_per_batch": {b: n for b, n in cut_by_b.items() if n},
                       "reached": bool(cut) or (math.isfinite(left) and left <= 0)}}


def fingerprint(cfg: dict) -> str:
    """What a round's plan depends on besides the runs: the grid, the adaptive settings other than
    `rounds` (raising it continues a sweep), the training and the estimator. A kept plan is reused
    only while this matches."""
    adapt = {k: v for k, v in settings(cfg).items() if k != "rounds"}
    keys = {"sweep": {k: cfg["sweep"][k] for k in ("batch_sizes", "lrs", "seeds")}, "adaptive": adapt,
            "train": config.train_config(cfg), "estimator": cfg["analysis"]["estimator"]}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def _kept_plan(cfg: dict, r: int, kept: Path, results: Path):
    """The plan kept for round r, when it still applies; None to plan afresh. A kept plan made under
    another config whose runs already exist is an error: re-planning would orphan them."""
    if not kept.exists():
        return None
    plan = read_plan(kept)
    if plan.get("fingerprint") == fingerprint(cfg):
        return plan
    ran = [p for p in plan["points"] if (results / config.run_metrics(p["batch_size"], p["lr"], p["seed"])).exists()]
    if ran:
        raise UserError(f"{kept}: round {r} was planned under another config (sweep grid, sweep.adaptive other than "
                        f"rounds, training sections or analysis.estimator) and {len(ran)} of its runs exist; expected "
                        "that config: restore it, or delete this plan and those runs to plan the round again")
    return None


def write_plan(cfg: dict, r: int, metrics_paths, plan_paths, out) -> dict:
    """Plan round r into `out` (results/<sweep>/rounds/round<r>.json). A plan kept from an earlier
    attempt (rounds/kept/) under the same config is written back unchanged: once made, a round's
    plan never changes."""
    from .metrics import load_all

    if r < 2:
        raise UserError(f"--round: {r}; expected 2 or more (round 1 is the config's grid)")
    out = Path(out)
    kept = out.parent / "kept" / out.name
    plan = _kept_plan(cfg, r, kept, out.parent.parent)
    if plan is not None:
        print(f"[lrscale plan] round {r}: reusing the plan kept in {kept}")
    else:
        plans = sorted((read_plan(p) for p in plan_paths), key=lambda p: p["round"])
        sweep = from_runs(load_all(metrics_paths), cfg["train"]["final_window"])
        plan = {**plan_round(cfg, r, sweep, plans), "fingerprint": fingerprint(cfg)}
        atomic_write_text(kept, json.dumps(plan, indent=1) + "\n")
    atomic_write_text(out, json.dumps(plan, indent=1) + "\n")
    print(f"[lrscale plan] round {r}: {len(plan['points'])} runs planned"
          + (f"; budget of {plan['budget']['max_runs']} runs reached" if plan["budget"]["reached"] else ""))
    for b, v in plan["per_batch"].items():
        print(f"  B={b}: {v['action']} ({v['why']})")
    for note in plan.get("notes", []):
        print(f"  note: {note}")
    for line in _stop_lines(cfg, plan):
        print(f"  {line}")
    return plan


def _stop_lines(cfg: dict, plan: dict) -> list[str]:
    """The plan log's plain words when the budget or the rounds ceiling leaves a batch size open."""
    lines, budget = [], plan["budget"]
    if budget["reached"]:
        cut = budget.get("not_planned_per_batch") or {}
        lost = ", ".join(f"B={b} {n} {plan['per_batch'][b]['action']} run(s)" for b, n in cut.items())
        lines.append(f"max_runs budget of {budget['max_runs']} runs reached: "
                     + (f"not planned: {lost}" if lost else "nothing more can be planned"))
    still = [f"B={b} ({v['action']})" for b, v in plan["per_batch"].items() if v.get("open")]
    ceiling = settings(cfg)["rounds"]
    if plan["round"] >= ceiling and still:
        lines.append(f"rounds ceiling {ceiling} reached: this is the last round, and before its runs "
                     f"{', '.join(still)} {'is' if len(still) == 1 else 'are'} not yet bracketed and identifiable; "
                     "fit.json's rounds block says what is left; raise sweep.adaptive.rounds to continue")
    return lines
