"""The critical batch size from the steps–samples tradeoff (issue 24.4; McCandlish et al. 2018, "An
Empirical Model of Large-Batch Training", §2.3 and App. D).

To reach a given loss, a batch size B needs S(B) steps and E(B) = B·S(B) samples, and in McCandlish's
model (S/S_min − 1)(E/E_min − 1) = 1, i.e. S(B) = S_min·(1 + B_crit/B) with B_crit = E_min/S_min:
below B_crit doubling B nearly halves the steps, above it it buys almost none. What is reported here
is B_crit as the batch size at which the steps double over S_min, S(B_crit) = 2·S_min: the same number
in McCandlish's form, and still defined when the knee is softer or sharper (where E_min/S_min is not). Each B's S comes from its
best loss (over lrs) at several training horizons: the steps at which that loss first reaches the
target, interpolated linearly in log steps between the two horizons that bracket it.

B_crit is fitted on ln S: for each B_crit, ln S_min is the mean of ln S − ln(1 + (B_crit/B)^γ), and
the knee's exponent γ (1 in McCandlish's form) is fitted too by default, so B_crit is the batch size
at which the steps double over S_min whatever the knee's sharpness: with γ held at 1 a softer knee
(γ = 0.7) put B_crit off by a factor 1.7–3 with CIs that missed it in 86–100% of sweeps
(bench/b_crit_accuracy.py). The 95% CI is the profile's over ln B_crit (S_min and γ refitted at
each point): the B_crits whose RSS stays within RSS_min·(1 + F(1, dof)/dof), dof = batch sizes − 3
(− 2 with γ = 1; the scatter about the curve is its own noise estimate). An end the profile never crosses within the search range is open (None): with
every B far above B_crit, S no longer depends on B and the data set no lower bound on B_crit; with
every B far below it, S ∝ 1/B and they set no upper bound.
"""

import math

import numpy as np
from scipy import optimize, stats

LOG_RANGE = (-8.0, 16.0)  # ln B_crit searched over e^-8 .. e^16 (far outside any sweep's batch sizes)
GRID = 241  # profile points over that range before the roots are refined
MIN_BATCHES = 3


def steps_to_target(steps, losses, target) -> float | None:
    """The steps at which a B's best-loss curve (`losses` at horizons `steps`, ascending) first
    reaches `target`, interpolated linearly in log steps; None when it never does, or already had
    at the first horizon (no bracket: the count is below it, not known)."""
    steps, losses = np.asarray(steps, float), np.asarray(losses, float)
    ok = np.isfinite(losses)
    steps, losses = steps[ok], losses[ok]
    if len(steps) < 2 or losses[0] <= target:
        return None
    for i in range(1, len(steps)):
        if losses[i] <= target:
            frac = (losses[i - 1] - target) / (losses[i - 1] - losses[i])
            return float(math.exp(math.log(steps[i - 1]) + frac * math.log(steps[i] / steps[i - 1])))
    return None


KNEE_RANGE = (0.2, 3.0)  # the free knee's exponent γ: from a very soft knee to a sharp one


def _rss(log_b, ln_s, log_bc, gamma) -> tuple[float, float]:
    """(RSS, ln S_min) of ln S = ln S_min + ln(1 + (B_crit/B)^γ) at ln B_crit = log_bc."""
    curve = np.log1p(np.exp(gamma * (log_bc - log_b)))
    ln_s_min = float(np.mean(ln_s - curve))
    return float(np.sum((ln_s - ln_s_min - curve) ** 2)), ln_s_min


def _profile(log_b, ln_s, log_bc, free_knee=True) -> tuple[float, float, float]:
    """(RSS, ln S_min, γ) at ln B_crit = log_bc: γ = 1 (McCandlish), or the γ that fits best."""
    gamma = 1.0
    if free_knee:
        gamma = optimize.minimize_scalar(lambda g: _rss(log_b, ln_s, log_bc, g)[0], bounds=KNEE_RANGE,
                                         method="bounded", options={"xatol": 1e-4}).x
    return (*_rss(log_b, ln_s, log_bc, gamma), float(gamma))


def fit_b_crit(batch_sizes, steps, free_knee=True) -> dict:
    """B_crit and S_min with the profile CI of B_crit, or why there is none. `steps`: S per batch
    size to reach one target loss (None: not reached; left out). free_knee (the default): S =
    S_min(1 + (B_crit/B)^γ) with γ fitted too (B_crit stays the B at which the steps double; one dof
    more); False: McCandlish's γ = 1, whose CI is honest only when the knee is exactly that sharp."""
    pairs = [(b, s) for b, s in zip(batch_sizes, steps) if s is not None and s > 0]
    if len(pairs) < MIN_BATCHES:
        return {"b_crit": None, "reason": f"{len(pairs)} batch sizes reach the target (need {MIN_BATCHES})"}
    log_b, ln_s = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    prof = lambda g: _profile(log_b, ln_s, g, free_knee)  # noqa: E731
    grid = np.linspace(*LOG_RANGE, GRID)
    rss = np.array([prof(g)[0] for g in grid])
    i = int(np.argmin(rss))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, GRID - 1)]
    best = optimize.minimize_scalar(lambda g: prof(g)[0], bounds=(lo, hi), method="bounded")
    rss_min, ln_s_min, gamma = prof(best.x)
    if min(abs(best.x - LOG_RANGE[0]), abs(best.x - LOG_RANGE[1])) < 1e-3 * (LOG_RANGE[1] - LOG_RANGE[0]):
        side = "below" if best.x < np.mean(LOG_RANGE) else "above"
        return {"b_crit": None, "reason": f"the steps fit best with B_crit far {side} the batch sizes run (the data "
                                          "bound it on one side only)", "n_batch_sizes": len(pairs)}
    dof = len(pairs) - 2 - bool(free_knee)
    if dof < 1:
        return {"b_crit": float(math.exp(best.x)), "s_min": math.exp(ln_s_min), "ci95": [None, None], "dof": 0,
                "n_batch_sizes": len(pairs), "reason": "no dof left for the CI", "free_knee": bool(free_knee),
                "knee_exponent": gamma}
    limit = rss_min * (1 + stats.f.ppf(0.95, 1, dof) / dof)
    excess = lambda g: prof(g)[0] - limit  # noqa: E731
    ends = []
    for side in (grid[grid < best.x][::-1], grid[grid > best.x]):  # outward from the minimum
        k = next((k for k, g in enumerate(side) if excess(g) > 0), None)
        if k is None:
            ends.append(None)  # the profile never rises enough: open on that side
            continue
        inner = best.x if k == 0 else side[k - 1]
        ends.append(float(math.exp(optimize.brentq(excess, *sorted((inner, side[k])), xtol=1e-6))))
    return {"b_crit": float(math.exp(best.x)), "ci95": ends, "s_min": math.exp(ln_s_min), "dof": dof,
            "n_batch_sizes": len(pairs), "residual_sd_ln": math.sqrt(rss_min / dof), "free_knee": bool(free_knee),
            "knee_exponent": gamma}
