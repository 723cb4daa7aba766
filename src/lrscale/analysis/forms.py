"""How lr_opt depends on B: three two-parameter forms fitted to the per-B optima and compared.

Every form is fitted in y = ln lr_opt against B by weighted least squares, with weights 1/var
from the per-B uncertainties (var of ln lr_opt):
  power_law   lr = C · B^β                                   (β: the scaling exponent)
  mccandlish  lr = lr_max / (1 + B_noise/B)                  (McCandlish et al. 2018: slope 1 -> 0)
  surge       lr = lr_peak / (½(√(B_noise/B) + √(B/B_noise))) (Adam: rises, peaks at B_noise, falls)
The two bending forms have a scale (a weighted mean, in closed form for a given B_noise) and
B_noise, found by profiling χ² over a fine grid of ln B_noise. All three have 2 parameters and
none is nested in another (a bending form reaches a power law only at β = 0 or 1, McCandlish, or
±½, the surge), so AICc adds nothing over χ² and a χ² difference is a likelihood ratio, not a test
with a known null distribution. The power law is the default: a bending form is preferred only
when it lowers χ² by at least PREFER_DCHI2, and any preferred form must pass a χ² goodness-of-fit
test, else the answer is `none`.
"""

import math

import numpy as np
from scipy import optimize, stats

from .names import BENDING, FORMS, MCCANDLISH, NO_FORM, POWER_LAW, UNDECIDED  # noqa: F401  (FORMS: re-exported)

# a bending form must beat the power law by this: a likelihood ratio of e² ≈ 7.4 in its favour (a
# convention, not a p-value: the forms are not nested), judged by bench/fit_accuracy.py's `bending pref.`
PREFER_DCHI2 = 4.0
# two bending forms closer than this are not told apart (a likelihood ratio under e^0.25 ≈ 1.3); between
# it and WEAK_DCHI2 the closer one is preferred and the reason says the other is not excluded. 0.5 rather
# than AIC's customary 2 was chosen on bench/fit_accuracy.py itself (right form, McCandlish 32 with 2
# seeds on symmetric curves 0.80 → 0.845; the cost, the other bending form named: `wrong_bend`, ≤ 0.11).
UNDECIDED_DCHI2 = 0.5
WEAK_DCHI2 = 2.0
GOF_P = 0.01  # the preferred form's χ² p-value below this: no form describes the points


def _shape(form: str, ln_b: np.ndarray, ln_bn: float) -> np.ndarray:
    """ln lr − ln scale for the bending forms at B_noise = e^ln_bn."""
    if form == MCCANDLISH:
        return -np.logaddexp(0.0, ln_bn - ln_b)  # −ln(1 + B_noise/B)
    return -np.log(np.cosh(0.5 * (ln_bn - ln_b)))  # ½(√(Bn/B) + √(B/Bn)) = cosh(½ ln(Bn/B))


def local_slope(form: str, b, b_noise) -> float:
    """d ln lr_opt / d ln B of a bending form at B."""
    if form == MCCANDLISH:
        return b_noise / (b + b_noise)
    return 0.5 * (b_noise - b) / (b_noise + b)


def wls_line(x, y, var, inflate_only=False) -> dict:
    """Weighted LS y = a + β x. SE scaled by √(χ²/dof) (only when > 1 with inflate_only)."""
    x, y, w = np.asarray(x, float), np.asarray(y, float), 1.0 / np.asarray(var, float)
    n = len(x)
    xm, ym = np.sum(w * x) / np.sum(w), np.sum(w * y) / np.sum(w)
    sxx = float(np.sum(w * (x - xm) ** 2))
    beta = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    intercept = float(ym - beta * xm)
    resid = y - (intercept + beta * x)
    chi2, dof = float(np.sum(w * resid**2)), n - 2
    scale = math.sqrt(chi2 / dof) if dof > 0 else math.nan
    if inflate_only and dof > 0:
        scale = max(1.0, scale)
    se = scale / math.sqrt(sxx) if dof > 0 else math.nan
    t = float(stats.t.ppf(0.975, dof)) if dof > 0 else math.nan
    return {"beta": beta, "intercept": intercept, "se": se, "chi2": chi2, "dof": dof, "scale": scale, "t_975": t,
            "ci95": [beta - t * se, beta + t * se], "residuals": [float(r) for r in resid]}


def _profile(form, ln_b, y, w, grid):
    """χ²(ln B_noise) minimised over the scale, and the best scale, on a grid of ln B_noise."""
    shapes = _shape(form, ln_b[None, :], np.asarray(grid, float)[:, None])  # (grid, n)
    scale = np.sum(w * (y - shapes), axis=1) / np.sum(w)
    chi2 = np.sum(w * (y - shapes - scale[:, None]) ** 2, axis=1)
    return chi2, scale


def _interval(grid, chi2, level):
    """Grid values with χ² within `level` of the minimum; None at an open end (grid edge)."""
    inside = np.flatnonzero(chi2 - chi2.min() <= level)
    lo, hi = inside.min(), inside.max()
    return [None if lo == 0 else float(grid[lo]), None if hi == len(grid) - 1 else float(grid[hi])]


def fit_bending(form, b, y, var, with_ci=True) -> dict:
    """Best B_noise and scale of a bending form; 95% profile-likelihood CIs (χ² scaled by the fit)."""
    ln_b, w = np.log(np.asarray(b, float)), 1.0 / np.asarray(var, float)
    grid = np.linspace(ln_b.min() - math.log(1e3), ln_b.max() + math.log(1e3), 1201)
    y = np.asarray(y, float)
    chi2, scale = _profile(form, ln_b, y, w, grid)
    k = int(np.argmin(chi2))
    at_edge = k in (0, len(grid) - 1)  # B_noise runs off: the form is a power law over these B
    if not at_edge:  # refine between the grid neighbours: a noiseless curve gives B_noise exactly
        best = optimize.minimize_scalar(lambda g: _profile(form, ln_b, y, w, [g])[0][0],
                                        bounds=(grid[k - 1], grid[k + 1]), method="bounded",
                                        options={"xatol": 1e-10})
        ln_bn, (chi2_k, scale_k) = float(best.x), (v[0] for v in _profile(form, ln_b, y, w, [best.x]))
    else:
        ln_bn, chi2_k, scale_k = float(grid[k]), chi2[k], scale[k]
    dof = len(ln_b) - 2
    bn = math.exp(ln_bn)
    out = {"form": form, "chi2": float(chi2_k), "dof": dof, "b_noise": bn, "scale": math.exp(scale_k)}
    if not with_ci:
        return out
    inflated = dof > 0 and chi2_k / dof > 1
    s2 = chi2_k / dof if inflated else 1.0
    # Δχ² for 95% with one parameter of interest: χ²₁ with the weights' own scale; F(1, dof)·s² when
    # the scatter, s² = χ²/dof from only dof residuals, scales them (a t² calibration, like β's CI)
    level = (float(stats.f.ppf(0.95, 1, dof)) if inflated else 3.841) * s2
    ln_bn_ci = _interval(grid, chi2, level)
    # scale's profile: for each ln B_noise, χ² grows as W (s − ŝ)² away from its best scale ŝ
    sgrid = np.linspace(scale_k - 3, scale_k + 3, 601)
    prof_s = np.min(chi2[None, :] + np.sum(w) * (sgrid[:, None] - scale[None, :]) ** 2, axis=1)
    scale_ci = _interval(sgrid, prof_s, level)
    exp = lambda v: None if v is None else math.exp(v)  # noqa: E731
    return {
        **out, "b_noise_ci95": [exp(v) for v in ln_bn_ci], "scale_ci95": [exp(v) for v in scale_ci],
        "b_noise_unbounded": at_edge,
        "local_slope": {"smallest_b": local_slope(form, float(np.min(b)), bn),
                        "largest_b": local_slope(form, float(np.max(b)), bn)},
    }


def fit_power_law(b, y, var) -> dict:
    line = wls_line(np.log(np.asarray(b, float)), y, var)
    return {"form": POWER_LAW, "chi2": line["chi2"], "dof": line["dof"], "beta": line["beta"],
            "beta_ci95": line["ci95"], "scale": math.exp(line["intercept"]), "line": line,
            "local_slope": {"smallest_b": line["beta"], "largest_b": line["beta"]}}


def curve(fit: dict, b) -> np.ndarray:
    """lr_opt of a fitted form at batch sizes b."""
    b = np.asarray(b, float)
    if fit["form"] == POWER_LAW:
        return fit["scale"] * b ** fit["beta"]
    return fit["scale"] * np.exp(_shape(fit["form"], np.log(b), math.log(fit["b_noise"])))


def band(b, lr_opt, se_ln, form, b_grid, n=200, seed=0) -> list:
    """Pointwise 95% band of a form over b_grid: refits to lr_opt redrawn within its errors."""
    rng = np.random.default_rng(seed)
    y, se = np.log(np.asarray(lr_opt, float)), np.asarray(se_ln, float)
    draws = []
    for _ in range(n):
        y_star = y + rng.normal(0.0, se)
        f = fit_power_law(b, y_star, se**2) if form == POWER_LAW else fit_bending(form, b, y_star, se**2, False)
        draws.append(curve(f, b_grid))
    lo, hi = np.quantile(np.array(draws), [0.025, 0.975], axis=0)
    return [lo.tolist(), hi.tolist()]


def compare(b, lr_opt, se_ln, se_dof=math.inf) -> dict:
    """Fit all three forms to lr_opt(B) with SE of ln lr_opt `se_ln`; pick the preferred one.
    `se_dof`: degrees of freedom behind the SEs (their noise estimate): the goodness-of-fit test
    is then an F test, not χ², so a noisy noise estimate does not reject a true form."""
    y, var = np.log(np.asarray(lr_opt, float)), np.asarray(se_ln, float) ** 2
    fits = {POWER_LAW: fit_power_law(b, y, var), **{form: fit_bending(form, b, y, var) for form in BENDING}}
    n = len(y)
    for f in fits.values():
        f["aicc"] = f["chi2"] + 4 + 12 / (n - 3) if n > 3 else math.inf
        f["gof_p"] = gof_p(f["chi2"], f["dof"], se_dof)
    return {"fits": fits, **prefer(fits)}


def gof_p(chi2, dof, se_dof):
    """p-value of χ² on dof when the SDs behind it carry se_dof dof of their own: F, else χ²."""
    if dof <= 0:
        return None
    if not math.isfinite(se_dof):
        return float(stats.chi2.sf(chi2, dof))
    return float(stats.f.sf(chi2 / dof, dof, se_dof))


def close_second(fits, choice) -> str | None:
    """The other bending form when it is within WEAK_DCHI2 of the chosen one (not excluded), else None."""
    other = [f for f in BENDING if f != choice][0]
    return other if fits[other]["chi2"] - fits[choice]["chi2"] < WEAK_DCHI2 else None


def prefer(fits) -> dict:
    """power_law unless a bending form fits clearly better; `none` when the choice fails its χ² test."""
    pl = fits[POWER_LAW]["chi2"]
    better = sorted((fits[f]["chi2"], f) for f in BENDING if pl - fits[f]["chi2"] >= PREFER_DCHI2)
    if not better:
        choice, reason = POWER_LAW, f"no bending form lowers χ² by {PREFER_DCHI2:g} or more"
    elif len(better) == 2 and better[1][0] - better[0][0] < UNDECIDED_DCHI2:
        choice, reason = UNDECIDED, "McCandlish and surge fit about equally well, both better than a power law"
    else:
        choice = better[0][1]
        reason = f"χ² {fits[choice]['chi2']:.1f} vs {pl:.1f} for a power law"
        other = close_second(fits, choice)
        if other:
            gap = fits[other]["chi2"] - fits[choice]["chi2"]
            reason += f"; the {other} form is only Δχ² = {gap:.1f} behind, not excluded"
    best = fits[min(fits, key=lambda f: fits[f]["chi2"])] if choice == UNDECIDED else fits[choice]
    p = best["gof_p"]
    if p is not None and p < GOF_P:
        return {"preferred_form": NO_FORM, "preference_reason": (
            f"the best form ({best['form']}) has χ² = {best['chi2']:.1f} on {best['dof']} dof (p = {p:.2g}): "
            "no form describes the per-B optima within their errors")}
    return {"preferred_form": choice, "preference_reason": reason}
