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
    out = {}
    for b in sweep.batch_sizes:
        e = sweep.epochs.get(b)
        if e is not None and np.isfinite(e).any():
            out[b] = float(np.nanmedian(e))
    return out


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
    (`repetition`, `overfit_at_optimum`, `mixes_repetition`)."""
    unit, value = _unit(sweep)
    epochs = _epochs(sweep)
    e = list(epochs.values())
    repetition = bool(e and max(e) > 1 and min(e) > 0 and max(e) / min(e) > REPETITION_RATIO)
    overfit = _overfit_at_optimum(sweep, per_batch)
    return {"unit": unit, "value": value, "epochs": {str(b): v for b, v in epochs.items()},
            "repetition": repetition, "overfit_at_optimum": overfit, "mixes_repetition": repetition or bool(overfit)}


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
        parts.append(f"β here mixes batch noise with data repetition: B={lo} makes {e[lo]:.2g} pass(es) over the "
                     f"training data, B={hi} {e[hi]:.2g}")
    if budget["overfit_at_optimum"]:
        bs = ", ".join(map(str, budget["overfit_at_optimum"]))
        parts.append(("" if budget["repetition"] else "β here mixes batch noise with data repetition: ")
                     + f"the optimum of B={bs} sits on runs whose val loss rose from its minimum (overfitting)")
    return "; ".join(parts)


RULE_NAMES = {"beta2": "β₂ (constant half-life in samples)", "eps": "ε (square-root rule)",
              "weight_decay": "weight decay (constant timescale τ)"}


def optimizer_rules(runs) -> dict | None:
    """fit.json's `optimizer_scaling`, from the runs' metrics.json: {"rules": the co-scaling rules on
    (optimizer.scale_with_batch), "reference_batch_size"}; rules [] when every B ran the same
    settings; None without metrics files (a results CSV alone does not say)."""
    if not runs:
        return None
    used = [m["config"]["optimizer"].get("scale_with_batch") for m in runs]
    first = next((u for u in used if u), None)
    if first is None:
        return {"rules": [], "reference_batch_size": None}
    return {"rules": [k for k in RULE_NAMES if first.get(k)], "reference_batch_size": first["reference_batch_size"]}


def optimizer_sentence(scaling: dict | None) -> str:
    """Which co-scaling rules a β was measured under (the report's budget paragraph)."""
    if scaling is None:
        return ""
    if not scaling["rules"]:
        return "Optimizer: the same settings at every B (no co-scaling rule)."
    return (f"Optimizer co-scaled with B from B_ref = {scaling['reference_batch_size']}: "
            + ", ".join(RULE_NAMES[k] for k in scaling["rules"]) + "; β here is measured under these rules.")
