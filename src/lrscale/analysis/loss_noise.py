"""σ(B): the SD of one run's final loss at each batch size.

Small batches are noisier: one σ pooled over B makes large-B optima look flat and small-B CIs too
narrow. With seed repeats, each B's own within-cell spread near its optimum (s_b² on dof_b, where
the local fits live) is the evidence. On the log scale, log s_b² is unbiased for log σ_b² after
subtracting ψ(d/2) − ln(d/2), with variance ψ'(d/2) for Gaussian runs, so the batch sizes can be
compared. (Q's χ² reference is approximate: 7–9% false alarms at the 5% level for Gaussian runs,
11–21% for t₄ run noise; a false alarm only shrinks each B toward a flat trend.)
  1. Homogeneity (Cochran's Q about the weighted mean): p ≥ HETEROGENEITY_P keeps the pooled σ for
     every B (the calibrated default: no evidence that σ differs is no reason to add noise).
  2. Otherwise a trend m(B) = a + c·ln B (the slope only when its t test rejects c = 0, else a
     constant) with a between-B spread τ² beyond sampling (moment estimate), and each B's σ_b² the
     precision-weighted blend of its own log s_b² and m(B): a B with few repeats leans on the trend,
     one with none takes the trend. Its dof: 2 / (posterior variance) (χ²'s log-variance ≈ 2/dof),
     at most the sweep's pooled dof.
One seed has no spread to compare: the pooled σ stays (optima.pooled_sigma's local cubic residuals).
"""

import math

import numpy as np
from scipy import special, stats

from . import optima

HETEROGENEITY_P = 0.05  # Q test: below this, σ is modelled per batch size
MIN_BATCH_SIZES = 3  # batch sizes with seed repeats needed to compare σ across B


def _log_var(ss: float, dof: int) -> tuple[float, float]:
    """(unbiased estimate of ln σ², its sampling variance) from a sum of squares on `dof` dof."""
    return math.log(ss / dof) - (special.digamma(dof / 2) - math.log(dof / 2)), float(special.polygamma(1, dof / 2))


def _wls(x, y, var, slope: bool):
    """Weighted LS of y on (1, x) or on 1: coefficients, their covariance, residuals."""
    X = np.column_stack([np.ones_like(x), x]) if slope else np.ones((len(x), 1))
    w = 1 / var
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    coef = cov @ X.T @ (w * y)
    return coef, cov, y - X @ coef


def _tau2(x, y, v, slope: bool) -> float:
    """Between-B variance of ln σ² beyond sampling (iterated moment estimate, ≥ 0)."""
    tau2, k, p = 0.0, len(y), 2 if slope else 1
    for _ in range(20):
        _, _, r = _wls(x, y, v + tau2, slope)
        w = 1 / (v + tau2)
        new = max(0.0, float(np.sum(w * (r**2 - v)) / np.sum(w)) * k / max(k - p, 1))
        if abs(new - tau2) < 1e-9:
            break
        tau2 = new
    return tau2


def _trend(x, y, v) -> dict:
    """m(B) on ln B, with the slope only when the data ask for it."""
    tau2 = _tau2(x, y, v, True)
    coef, cov, _ = _wls(x, y, v + tau2, True)
    t = coef[1] / math.sqrt(cov[1, 1])
    p_slope = float(2 * stats.t.sf(abs(t), max(len(y) - 2, 1)))
    if p_slope >= HETEROGENEITY_P:
        tau2 = _tau2(x, y, v, False)
        coef, cov, _ = _wls(x, y, v + tau2, False)
        coef, cov = np.array([coef[0], 0.0]), np.array([[cov[0, 0], 0.0], [0.0, 0.0]])
    return {"coef": coef, "cov": cov, "tau2": tau2, "p_slope": p_slope}


def model(spread: dict, pooled: tuple, batch_sizes) -> dict:
    """σ per batch size. `spread`: B -> (sum of squares, dof) of its seed spread near the optimum
    (dof 0: no repeats); `pooled`: (σ, dof, source) over the whole sweep. Returns {"per_batch":
    bool, "sigma": {B: σ}, "dof": {B: dof}, "reason", and the test's and trend's numbers}."""
    sigma, dof, source = pooled
    flat = {"per_batch": False, "sigma": {b: sigma for b in batch_sizes}, "dof": {b: dof for b in batch_sizes}}
    if source != "seed spread":
        return {**flat, "reason": f"one σ for every B: no seed repeats to compare ({source})"}
    have = sorted(b for b, (ss, d) in spread.items() if d > 0 and ss > 0)
    if len(have) < MIN_BATCH_SIZES:
        return {**flat, "reason": f"one σ for every B: seed repeats at {len(have)} batch size(s), "
                                  f"{MIN_BATCH_SIZES} needed to compare them"}
    x = np.log([float(b) for b in have])
    y, v = map(np.array, zip(*(_log_var(*spread[b]) for b in have)))
    mean = float(np.sum(y / v) / np.sum(1 / v))
    q = float(np.sum((y - mean) ** 2 / v))
    p_q = float(stats.chi2.sf(q, len(have) - 1))
    own = {b: math.sqrt(spread[b][0] / spread[b][1]) for b in have}
    test = {"q": q, "p_value": p_q, "own_sigma": own, "own_dof": {b: int(spread[b][1]) for b in have}}
    if p_q >= HETEROGENEITY_P:
        return {**flat, **test, "reason": f"one σ for every B: their seed spreads agree (Q = {q:.1f} on "
                                          f"{len(have) - 1} dof, p = {p_q:.2g})"}
    tr = _trend(x, y, v)
    sig, dofs = {}, {}
    for b in batch_sizes:
        xb = np.array([1.0, math.log(b)])
        prior, prior_var = float(xb @ tr["coef"]), float(xb @ tr["cov"] @ xb) + tr["tau2"]
        w_prior, est, w_own = 1 / prior_var, prior / prior_var, 0.0
        if b in own:
            yb, vb = _log_var(*spread[b])
            w_own, est = 1 / vb, est + yb / vb
        sig[b] = math.sqrt(math.exp(est / (w_own + w_prior)))
        dofs[b] = min(2 * (w_own + w_prior), dof)
    slope = float(tr["coef"][1]) / 2  # σ ∝ B^slope
    return {"per_batch": True, "sigma": sig, "dof": dofs, **test, "sigma_slope_ln_b": slope,
            "p_slope": tr["p_slope"], "tau": math.sqrt(tr["tau2"]),
            "reason": (f"σ modelled per batch size: their seed spreads differ (Q = {q:.1f} on {len(have) - 1} dof, "
                       f"p = {p_q:.2g}); " + (f"σ ∝ B^{slope:.2f}" if slope else "no trend in B")
                       + ", each B's own spread shrunk toward it")}


def within_run_sigma(sweep) -> float | None:
    """The median over batch sizes of the runs' within-run noise (the metrics' train_loss_std as the SE of
    the final window's mean): a lower bound on one run's σ, None where the metrics give none."""
    known = [v for v in sweep.noise.values() if v]
    return float(np.median(known)) if known else None


def of_sweep(sweep) -> dict:
    """σ of one run's final loss: pooled over the sweep (sigma, dof, source; optima.pooled_sigma) and
    `model`: per batch size (`model`)."""
    fallback = within_run_sigma(sweep)
    sigma, dof, source = optima.pooled_sigma(sweep.lrs, sweep.losses, fallback, sweep.ran, sweep.grid)
    if sigma is not None and source != "seed spread" and fallback is not None and fallback > sigma:
        # one seed: the within-run noise is a lower bound; when it is the larger, it is the estimate used
        sigma, dof, source = fallback, math.inf, "train_loss_std (above the local cubic residuals)"
    spread = optima.seed_spread(sweep.lrs, sweep.losses, sweep.ran, sweep.grid) if source == "seed spread" else {}
    return {"sigma": sigma, "dof": dof, "source": source,
            "model": model(spread, (sigma, dof, source), sweep.batch_sizes)}
