"""Round plan files: read one (checked enough to plan from), and what fit.json says of the rounds.

Imports neither numpy nor scipy: building the DAG and `lrscale status` read plans, and the fit
records them, without paying for the planner (lrscale.adaptive), which needs the fit's analysis.
"""

import json
from pathlib import Path

from . import config
from .analysis.names import GRAD_CLIPPED, UNBRACKETED  # names only: no numpy, no scipy
from .errors import UserError
from .fileio import read_text


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


def open_flags(row: dict) -> dict:
    """A fit row's flags that keep its optimum out of the fit (grad_clipped is a confound, not that)."""
    return {k: v for k, v in row["flags"].items() if k != GRAD_CLIPPED}


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
        row["edge_resolved_by_extension"] = extended and not set(UNBRACKETED) & set(row["flags"])
    result["rounds"] = {
        "n": 1 + len(plans),
        "plans": [{"round": p["round"], "runs": len(p["points"]), "per_batch": p["per_batch"], "budget": p["budget"]}
                  for p in plans],
        "budget_reached": any(p["budget"]["reached"] for p in plans),
    }
    result["rounds"]["unresolved"], result["rounds"]["stopped"] = _left_open(result, plans)


def _left_open(result: dict, plans: list[dict]) -> tuple[list, str]:
    """The batch sizes the sweep ends without bracketing and identifying, each with why planning
    left it (extensions spent, the max_runs budget, or the rounds ceiling), and one plain sentence."""
    n, last = 1 + len(plans), plans[-1]["per_batch"] if plans else {}
    budget = next((p["budget"]["max_runs"] for p in plans if p["budget"]["reached"]), None)
    left = []
    for row in result["per_batch"]:
        flags = open_flags(row)
        if not flags:
            continue
        b, plan_b = row["batch_size"], last.get(str(row["batch_size"]), {})
        cause = (f"no extension left ({plan_b['why']})" if plan_b.get("action") == "unbracketed"
                 else f"reseeds spent ({plan_b['why']})" if plan_b.get("action") == "unresolved"
                 else f"max_runs budget of {budget} runs reached" if budget is not None
                 else f"rounds ceiling {n} reached")
        what = "; ".join(f"{k} ({v})" for k, v in flags.items())
        left.append({"batch_size": b, "flags": sorted(flags), "cause": cause, "text": f"B={b} still {what}"})
    if not left:  # from the first round that found nothing left to do, if one did
        idle = next((p["round"] for p in plans if all(v["action"] == "done" for v in p["per_batch"].values())), None)
        return [], "every batch size bracketed and identifiable" + (
            f" after round {idle - 1} of {n} (later rounds planned nothing)" if idle else f" after {n} rounds")
    causes = dict.fromkeys(u["cause"] for u in left)  # in batch-size order
    return left, "; ".join(f"{c}: " + ", ".join(u["text"] for u in left if u["cause"] == c) for c in causes)
