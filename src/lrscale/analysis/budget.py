"""What each batch size's runs were given and what it did to them (issue 24.1): the budget unit the
sweep held fixed, the passes over the training data, and overfitting near the optimum.

With the same number of steps at every B, B = 512 sees 64x the samples of B = 8: on a small dataset
the large batches repeat it many times over, and where a run's val loss turns up (it memorises) the
lr that is best is no longer the one that learns fastest. β then mixes the batch's gradient noise
with data repetition. Read from results.csv alone (the config that made it may not be at hand):

  unit       "steps" when every finished run made the same number of updates, "samples" when every
             one saw the same number of samples (steps x B), else None (mixed or unknown)
  epochs     per B, the median passes over the training set (results.csv `epochs`; none: fresh data)
  repetition epochs differ across B by more than REPETITION_RATIO with some B above one pass
  overfit_at_optimum  the B whose runs at the lr nearest lr_opt mostly overfit (`overfit`)
"""

import json
import math

import numpy as np

REPETITION_RATIO = 2.0  # epochs differing by more than this across B (with any above 1): β mixes in repetition


def _unit(sweep) -> tuple[str | None, float | None]:
    """The budget every finished run shared: ("steps", n) or ("samples", n), else (None, None). A
    samples (or tokens) budget runs ceil(samples / B) steps: equal samples up to one batch."""
    steps, samples = [], []
    for b in sweep.batch_sizes:
        s = sweep.steps.get(b)
        if s is not None:
            done = s[np.isfinite(sweep.losses[b]) & np.isfinite(s)]
            steps, samples = steps + done.tolist(), samples + (done * b).tolist()
    if not steps:
        return None, None
    if len(set(steps)) == 1:
        return "steps", steps[0]
    if max(samples) - min(samples) < max(sweep.batch_sizes):
        return "samples", float(min(samples))
    return None, None


def _epochs(sweep) -> dict:
    """B -> median passes over the training set of its runs (B without any: left out)."""
    return {b: float(np.nanmedian(e)) for b in sweep.batch_sizes
            if (e := sweep.epochs.get(b)) is not None and np.isfinite(e).any()}


def _overfit_at_optimum(sweep, per_batch: list) -> list:
    """The B whose runs at the lr nearest their lr_opt mostly overfit."""
    out = []
    for row in per_batch:
        b, flags = row["batch_size"], sweep.overfit.get(row["batch_size"])
        if row.get("lr_opt") is None or flags is None:
            continue
        j = int(np.argmin(np.abs(np.log10(sweep.lrs[b]) - math.log10(row["lr_opt"]))))
        known = flags[:, j][np.isfinite(flags[:, j])]
        if len(known) and known.mean() > 0.5:
            out.append(b)
    return out


def assess(sweep, per_batch: list) -> dict:
    """fit.json's `budget`: unit and value held fixed, epochs per B, whether β mixes in data repetition
    (`repetition`; `overfit_at_optimum`, of them `overfit_repeated` where that B made more than one pass;
    `mixes_repetition`). A val loss that rises within one pass, or on fresh data, is no memorising."""
    unit, value = _unit(sweep)
    epochs = _epochs(sweep)
    e = list(epochs.values())
    repetition = bool(e and max(e) > 1 and min(e) > 0 and max(e) / min(e) > REPETITION_RATIO)
    overfit = _overfit_at_optimum(sweep, per_batch)
    repeated = [b for b in overfit if epochs.get(b, 0) > 1]
    return {"unit": unit, "value": value, "epochs": {str(b): v for b, v in epochs.items()}, "repetition": repetition,
            "overfit_at_optimum": overfit, "overfit_repeated": repeated, "mixes_repetition": repetition or bool(repeated)}


MIXES = "β here mixes batch noise with data repetition: "


def sentence(budget: dict) -> str:
    """The verdict's caveat on the budget: what was held fixed, and when β mixes in data repetition."""
    unit, value = budget["unit"], budget["value"]
    parts = []
    if unit == "steps":
        parts.append(f"budget: {value:.0f} steps per run at every B (the larger B see more data)")
    elif unit == "samples":
        parts.append(f"budget: about {value:.3g} samples (or tokens' worth) per run at every B")
    if budget["repetition"]:
        e = {int(b): v for b, v in budget["epochs"].items()}
        lo, hi = min(e, key=e.get), max(e, key=e.get)
        parts.append(f"{MIXES}B={lo} makes {e[lo]:.2g} pass(es) over the training data, B={hi} {e[hi]:.2g}")
    repeated = budget.get("overfit_repeated", [])
    if repeated:
        parts.append(("" if budget["repetition"] else MIXES) + f"the optimum of B={', '.join(map(str, repeated))} "
                     "sits on runs that overfit (their val loss rose from its minimum after more than one pass)")
    other = [b for b in budget["overfit_at_optimum"] if b not in repeated]
    if other:
        parts.append(f"the val loss of the runs at the optimum of B={', '.join(map(str, other))} rose from its minimum "
                     "by the end within one pass over the data (or on fresh data): not memorising, so instability or "
                     "the schedule may set lr_opt there")
    return "; ".join(parts)


RULE_NAMES = {"beta2": "β₂ (constant half-life in samples)", "eps": "ε (square-root rule)",
              "weight_decay": "weight decay (constant timescale τ)"}


def optimizer_rules(runs) -> dict | None:
    """fit.json's `optimizer_scaling`, from the runs' metrics.json: {"rules": the co-scaling rules on
    (optimizer.scale_with_batch), "reference_batch_size"}; rules [] when every B ran the same
    settings; None without metrics files (a results CSV alone does not say)."""
    if not runs:
        return None
    used = {json.dumps(m["config"]["optimizer"].get("scale_with_batch"), sort_keys=True) for m in runs}
    if len(used) > 1:
        return {"rules": None, "reference_batch_size": None, "mixed": True}  # runs of different configs
    first = json.loads(used.pop())
    if first is None:
        return {"rules": [], "reference_batch_size": None}
    return {"rules": [k for k in RULE_NAMES if first.get(k)], "reference_batch_size": first["reference_batch_size"]}


def optimizer_sentence(scaling: dict | None) -> str:
    """Which co-scaling rules a β was measured under (the report's budget paragraph)."""
    if scaling is None:
        return ""
    if scaling.get("mixed"):
        return "Optimizer: the runs were trained under different co-scaling rules (optimizer.scale_with_batch differs)."
    if not scaling["rules"]:
        return "Optimizer: the same settings at every B (no co-scaling rule)."
    return (f"Optimizer co-scaled with B from B_ref = {scaling['reference_batch_size']}: "
            + ", ".join(RULE_NAMES[k] for k in scaling["rules"]) + "; β here is measured under these rules.")
