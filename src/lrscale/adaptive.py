"""Adaptive rounds: after each round, plan the next one from every run so far (issue 11).

Round 1 is the config's grid. Each later round, per batch size, from the fit's own per-B result:
  edge (optimum not bracketed)  add up to two lrs `step_decades` apart beyond the edge, or between
                                the best lr and a diverged neighbour, until bracketed (at most
                                `extend_edges` per B over the whole sweep);
  bracketed, not yet re-centred re-centre: len(seeds_per_point) lrs around lr_opt, 1.2 grid steps
                                apart (`spacing_decades`), most runs on the sides (wide, not
                                finer: a finer bracket pins the vertex worse);
  flat                          re-centred too (more runs may resolve it); flat after that: nothing;
  re-centred / out of extensions nothing.
Extensions come first, then re-centring, in batch-size order, until `max_runs` (all rounds) is
spent. Planned lrs are snapped to their run name's precision (config.LR_DECIMALS), so an lr IS its
name and two plans can never disagree about it; a planned lr whose name is already run at that B
reuses it with fresh seeds. The plan is a pure function of the runs and the earlier plans, so a
re-run, a crash or a SLURM requeue plans exactly the same points.
"""

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from . import config, optima
from .errors import UserError
from .fileio import atomic_write_text, read_text
from .sweep_table import Sweep, from_runs

MAX_EXTEND_PER_ROUND = 2  # lrs added beyond one edge in one round


def settings(cfg: dict) -> dict:
    """The sweep's adaptive section (schema defaults filled)."""
    return cfg["sweep"]["adaptive"]


def snap(lr: float) -> float:
    """The lr its run name says (LR_DECIMALS decimals): planned lrs are exactly their names."""
    return float(config.lr_name(lr))


def _history(plans: list[dict]) -> dict:
    """Per batch size, from the earlier plans: lrs added by extension, whether re-centred."""
    hist = {}
    for plan in plans:
        for p in plan["points"]:
            h = hist.setdefault(p["batch_size"], {"extended": set(), "recentred": False})
            if p["reason"].startswith("extend"):
                h["extended"].add(p["lr"])
            elif p["reason"].startswith("recenter"):
                h["recentred"] = True
    return hist


def _extension_lrs(row: dict, step: float) -> list[float]:
    """lrs that move toward bracketing an unbracketed optimum: beyond the edge tried, or between
    the best lr and a diverged neighbour."""
    lrs = row["lrs"]
    mean = [math.nan if v is None else v for v in row["mean_loss"]]
    finite = [i for i, v in enumerate(mean) if math.isfinite(v)]
    if not finite:  # every lr diverged: go below the smallest
        return [lrs[0] / 10 ** (step * k) for k in range(1, MAX_EXTEND_PER_ROUND + 1)]
    i = min(finite, key=lambda j: mean[j])
    if i == 0:
        return [lrs[0] / 10 ** (step * k) for k in range(1, MAX_EXTEND_PER_ROUND + 1)]
    if i == len(lrs) - 1:
        return [lrs[-1] * 10 ** (step * k) for k in range(1, MAX_EXTEND_PER_ROUND + 1)]
    if not math.isfinite(mean[i + 1]):
        return [math.sqrt(lrs[i] * lrs[i + 1])]
    if not math.isfinite(mean[i - 1]):
        return [math.sqrt(lrs[i] * lrs[i - 1])]
    if len(finite) < 3:  # bracketed by finite points but too few: widen on the low (safe) side
        return [lrs[finite[0]] / 10**step]
    return []


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


def _away_from_divergence(lrs, row: dict) -> list:
    """Re-centred (lr, runs) moved inside the nearest lr that diverged on either side (halfway from
    lr_opt to it): a run there would be lost, and with it the side that pins the vertex."""
    opt, diverged = row["lr_opt"], row.get("diverged_lrs") or []
    hi = min((d for d in diverged if d > opt), default=math.inf)
    lo = max((d for d in diverged if d < opt), default=0.0)
    return [(math.sqrt(opt * hi) if lr >= hi else math.sqrt(opt * lo) if lr <= lo else lr, k) for lr, k in lrs]


def _wanted(row: dict, hist: dict, a: dict, spacing: float) -> tuple[str, list[tuple[float, int]], str]:
    """(action, [(lr, runs)], why) for one batch size's fit row."""
    flags = row["flags"]
    if "edge" in flags or "insufficient" in flags:
        left = a["extend_edges"] - len(hist["extended"])
        lrs = _extension_lrs(row, a["extend_step_decades"])[: max(left, 0)]
        if not lrs:
            return "unbracketed", [], f"not bracketed and its {a['extend_edges']} extension(s) are spent"
        why = flags.get("edge") or flags.get("insufficient")
        return "extend", [(lr, None) for lr in lrs], why
    if hist["recentred"]:
        return ("flat", [], flags["flat"]) if "flat" in flags else ("done", [], "bracketed and already re-centred")
    rc = a["recenter"]
    mid = (len(rc["seeds_per_point"]) - 1) / 2
    lrs = [(row["lr_opt"] * 10 ** (spacing * (j - mid)), k) for j, k in enumerate(rc["seeds_per_point"])]
    lrs = _away_from_divergence(lrs, row)
    if "flat" in flags:  # often just too few runs so far: more, where it matters, may resolve it
        return "recenter", lrs, f"flat so far ({flags['flat']}); re-centred on its best lr {row['lr_opt']:.3g}"
    return "recenter", lrs, f"re-centred on lr_opt {row['lr_opt']:.3g}"


def set_grid(sweep: Sweep, grid_lrs) -> Sweep:
    """Tell the fit which lrs form the grid (round 1), so the local fits measure their windows in
    grid steps and count the lrs later rounds added between grid points."""
    sweep.grid = {b: np.sort(np.asarray(grid_lrs, float)) for b in sweep.batch_sizes}
    return sweep


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


def plan_round(cfg: dict, r: int, sweep: Sweep, plans: list[dict]) -> dict:
    """Round r's plan (r >= 2) from every run so far (`sweep`) and the earlier plans (rounds 2..r-1)."""
    from .fit import analyse  # the fit's own per-B optima and flags, without the bootstrap

    a = settings(cfg)
    used = sum(int(sweep.counts(b).sum()) for b in sweep.batch_sizes)
    left = math.inf if a["max_runs"] is None else a["max_runs"] - used
    hist, known, spacing = _history(plans), known_lrs(cfg, sweep), recenter_spacing(cfg)
    set_grid(sweep, cfg["sweep"]["lrs"])
    rows = {row["batch_size"]: row for row in analyse(sweep, estimator=cfg["analysis"]["estimator"],
                                                      bootstrap=0)["per_batch"]}
    actions, wanted, notes = {}, [], []
    for b in cfg["sweep"]["batch_sizes"]:
        action, lrs, why = _wanted(rows[b], hist.get(b, {"extended": set(), "recentred": False}), a, spacing)
        lrs = _resolved(b, action, lrs, known, notes)
        if action == "extend" and not lrs:
            action, why = "unbracketed", f"{why}; but those lrs are below the run names' precision"
        actions[b] = {"action": action, "why": why, "lr_opt": rows[b]["lr_opt"]}
        wanted += [(0 if action == "extend" else 1, b, lr, k or len(cfg["sweep"]["seeds"]), action) for lr, k in lrs]
    points, taken = [], {}
    for _, b, lr, k, action in sorted(wanted, key=lambda w: w[0]):  # extensions first (stable: B order)
        prefer = cfg["sweep"]["seeds"] if action == "extend" else ()  # an extension continues the grid
        seeds = _new_seeds(sweep, b, lr, k, taken.setdefault((b, config.lr_name(lr)), set()), prefer)
        taken[(b, config.lr_name(lr))] |= set(seeds)
        points += [_point(b, lr, s, r, f"{action}: {actions[b]['why']}") for s in seeds]
    cut = max(len(points) - max(left, 0), 0) if math.isfinite(left) else 0
    points = points[: len(points) - cut]
    return {"round": r, "grid_lrs": sorted(cfg["sweep"]["lrs"]), "points": points, "notes": notes,
            "per_batch": {str(b): v for b, v in actions.items()},
            "budget": {"max_runs": a["max_runs"], "runs_before": used, "planned": len(points), "not_planned": cut,
                       "reached": bool(cut) or (math.isfinite(left) and left <= 0)}}


def fingerprint(cfg: dict) -> str:
    """What a round's plan depends on besides the runs: the grid, the adaptive settings other than
    `rounds` (raising it continues a sweep), the training and the estimator. A kept plan is reused
    only while this matches."""
    adapt = {k: v for k, v in settings(cfg).items() if k != "rounds"}
    keys = {"sweep": {k: cfg["sweep"][k] for k in ("batch_sizes", "lrs", "seeds")}, "adaptive": adapt,
            "train": config.train_config(cfg), "estimator": cfg["analysis"]["estimator"]}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def read_plan(path) -> dict:
    """A plan file, checked enough to plan from (a damaged one is an error naming it)."""
    try:
        plan = json.loads(read_text(Path(path), "round plan"))
        _ = [(p["batch_size"], float(p["lr"]), p["seed"], p["reason"]) for p in plan["points"]], int(plan["round"])
        _ = [float(lr) for lr in plan["grid_lrs"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UserError(f"{path}: not a round plan; expected JSON with 'round', 'grid_lrs' and 'points' (batch_size, "
                        "lr, seed, reason); delete it to plan that round again") from None
    return plan


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
    from .aggregate import load_all

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
    return plan


def annotate(result: dict, plans: list[dict]) -> None:
    """Record the rounds in the fit's result: per batch size the round each lr was first run in
    (`lr_rounds`) and whether lrs added beyond an edge bracketed it; the plans' actions and budget."""
    plans = sorted(plans, key=lambda p: p["round"])
    planned = {}  # (B, lr name) -> rounds of its planned runs
    for plan in plans:
        for p in plan["points"]:
            planned.setdefault((p["batch_size"], config.lr_name(p["lr"])), []).append(plan["round"])
    grid = {config.lr_name(lr) for lr in plans[0].get("grid_lrs", [])}
    for row in result["per_batch"]:
        b = row["batch_size"]
        row["lr_rounds"] = [1 if config.lr_name(lr) in grid else min(planned.get((b, config.lr_name(lr)), [1]))
                            for lr in row["lrs"]]
        extended = any(p["batch_size"] == b and p["reason"].startswith("extend") for pl in plans for p in pl["points"])
        row["extended"] = extended
        row["edge_resolved_by_extension"] = extended and not {"edge", "insufficient"} & set(row["flags"])
    result["rounds"] = {
        "n": 1 + len(plans),
        "plans": [{"round": p["round"], "runs": len(p["points"]), "per_batch": p["per_batch"], "budget": p["budget"]}
                  for p in plans],
        "budget_reached": any(p["budget"]["reached"] for p in plans),
    }
