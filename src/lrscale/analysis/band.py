"""The near-optimal-band cross-check (issue 23.2): each batch size's lr_opt as the centre of the lrs
whose loss is within a tolerance of its best, as DeepSeek LLM (2024) and Step Law (2025) fit their
scaling rules to the runs near the minimum instead of to a fitted vertex.

Per batch size: the seed-mean loss at each lr, its best L*, and the band of lrs with a mean loss at
most L* + tolerance, tolerance = max(BAND_RELATIVE·|L*|, BAND_NOISE_SD·SE of a seed mean): a run
within noise of the best cannot be told from it, and on low-noise data DeepSeek's 0.25% sets the
band. lr_opt is the band's centre in log10 lr (the midpoint of its lowest and highest lr: a mean of
its lrs would drift toward the side where an adaptive round added more of them). No curve is fitted, so the
estimate carries no shape assumption, only the grid's resolution. A band that reaches the lowest or
the highest lr run at that B is cut by the grid (its centre is biased inward): that batch size is left
out, and so is a flat one (no curvature in the per-B fit).

β is the OLS slope of log10 lr_opt on log10 B, its 95% CI t-based from the scatter about the line
(dof = batch sizes − 2): that scatter holds both the noise and the grid's quantisation of the centres.
A centre moves in half grid steps, so its error is at least that rounding's, h/(2√12) for a grid
step h (the sweep's grid step, not the finer spacing an adaptive round leaves): the scatter is never
taken below it (a few centres can fall on a line by chance; the CI of a coarse estimate must not then
shrink to a point). It is a floor, not the error: on a steep-walled curve the band sits off the
optimum by more than the rounding, which the scatter about the line then carries.
"""

import math

import numpy as np
from scipy import stats

from .optima import seed_mean, spacing

BAND_RELATIVE = 0.0025  # DeepSeek LLM's tolerance: within 0.25% of the best loss
BAND_NOISE_SD = 2.0  # and at least 2 SEs of a seed mean (a difference the seeds cannot resolve)
MIN_BATCHES = 3


def centre(log_lrs, mean, se) -> tuple[float | None, str | None]:
    """One batch size's band centre (log10 lr) and None, or None and why it has none."""
    finite = np.isfinite(mean)
    if finite.sum() < 2:
        return None, "fewer than 2 lrs with a finite loss"
    best = float(np.min(mean[finite]))
    tolerance = max(BAND_RELATIVE * abs(best), BAND_NOISE_SD * (se or 0.0))
    inside = finite & (mean <= best + tolerance)
    run = np.flatnonzero(finite)
    if inside[run[0]] or inside[run[-1]]:
        return None, "the band reaches the grid's edge"
    return float((log_lrs[inside].min() + log_lrs[inside].max()) / 2), None


def fit_band(sweep, sigma_of, skip=()) -> dict:
    """β from the band centres with its t-CI, each batch size's centre (lr_opt) and the batch sizes
    left out with why. `sigma_of(b)`: σ of one run's loss at b (None: unknown); `skip`: flat batch sizes."""
    lr_opt, left_out, rounding = {}, [], {}
    for b in sweep.batch_sizes:
        if b in skip:
            left_out.append({"batch_size": b, "reason": "flat: no curvature"})
            continue
        mean = seed_mean(sweep.losses[b], sweep.ran_mask(b))
        sigma = sigma_of(b)
        se = None if sigma is None else sigma / math.sqrt(max(int(sweep.counts(b).max()), 1))
        log_lrs = np.log10(sweep.lrs[b])
        x, why = centre(log_lrs, mean, se)
        if x is None:
            left_out.append({"batch_size": b, "reason": why})
        else:
            lr_opt[b], rounding[b] = x, spacing(sweep.grid.get(b, sweep.lrs[b])) / (2 * math.sqrt(12))
    out = {"lr_opt": {str(b): 10**x for b, x in lr_opt.items()}, "left_out": left_out,
           "tolerance": {"relative": BAND_RELATIVE, "noise_sd": BAND_NOISE_SD}}
    if len(lr_opt) < MIN_BATCHES:
        return {**out, "beta": None, "ci95": None, "reason": f"{len(lr_opt)} batch sizes with a band inside the grid"}
    lb, x = np.log10(list(lr_opt)), np.array(list(lr_opt.values()))
    line = stats.linregress(lb, x)
    dof = len(x) - 2
    scatter = math.sqrt(np.sum((x - line.intercept - line.slope * lb) ** 2) / dof)
    floor = math.sqrt(np.mean(np.square(list(rounding.values()))))
    se = max(scatter, floor) / math.sqrt(np.sum((lb - lb.mean()) ** 2))
    half = float(stats.t.ppf(0.975, dof) * se)
    return {**out, "beta": float(line.slope), "ci95": [float(line.slope) - half, float(line.slope) + half],
            "dof": dof, "scatter_log10": scatter, "rounding_log10": floor}
