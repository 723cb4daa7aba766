"""One local curve shape shared by every batch size: each B's optimum, once the shape of the loss
around it is learnt from the whole sweep.

A quadratic through three points cannot follow an asymmetric curve (a steep wall above the
optimum): its vertex lands off the optimum by an amount that changes with where the optimum falls
between grid points. Around their optima the loss curves of a sweep's batch sizes share a shape
and differ in place, level and width, so the points within 2 grid steps of each B's best are
fitted at once by

    loss = a_B + c_B · (u² + k·u³ + q·u⁴),   u = log10 lr − x_B

per B: level a_B, curvature c_B, optimum x_B; shared: the asymmetry k (1/decade) and q
(1/decade²). The optimum is u = 0 exactly, and x_B's SE comes from the fit's covariance, the
uncertainty of k and q included. Five points per B pin x_B about twice as well as three, and the
shared k, q take the asymmetry out instead of leaving a phase bias. The fit is only used when it
describes the points (a χ² test against the sweep's noise) and has no other stationary point in
any window; otherwise the caller keeps its per-B quadratics (`optima.locate`).
"""

import math

import numpy as np
from scipy import optimize, stats

MIN_FULL_WINDOWS = 3  # batch sizes with 5 points each: enough to learn the shared k and q
FULL_WINDOW = 5
GOF_P = 0.01  # a χ² p-value below this: the shared shape does not describe the points


def _unpack(p, n):
    return p[0 : 3 * n : 3], p[1 : 3 * n : 3], p[2 : 3 * n : 3], p[-2], p[-1]


def _model(p, xs):
    """The shared-shape curve at every window's points, concatenated."""
    a, c, xb, k, q = _unpack(p, len(xs))
    return np.concatenate([a[j] + c[j] * (u**2 + k * u**3 + q * u**4) for j, u in
                           enumerate(x - xb[j] for j, x in enumerate(xs))])


def _start(xs, ys) -> list:
    """Per-B level, curvature and vertex of a plain quadratic; k = q = 0."""
    p = []
    for x, y in zip(xs, ys):
        c2, c1, c0 = np.polyfit(x, y, 2)
        xv = -c1 / (2 * c2) if c2 > 0 else x[np.argmin(y)]
        p += [c0 + c1 * xv + c2 * xv**2, max(c2, 1e-12), min(max(xv, x.min()), x.max())]
    return p + [0.0, 0.0]


def _single_minimum(k, q, spans) -> bool:
    """Whether u = 0 is the only stationary point within each window (u² + k u³ + q u⁴ has its others
    where 2 + 3k u + 4q u² = 0), so the fitted optimum is the window's minimum."""
    roots = np.roots([4 * q, 3 * k, 2.0]) if (k or q) else []
    real = [r.real for r in roots if abs(r.imag) < 1e-12]
    return not any(lo <= r <= hi for r in real for lo, hi in spans)


def fit(windows: dict, noise_dof=math.inf) -> dict:
    """Fit the shared shape to `windows` {B: (log10 lrs, seed-mean losses, SD of each)}, each of ≥ 3
    points. Returns {"used": True, "x": {B: log10 lr_opt}, "se": {B: SE}, "draw": {B: row of A},
    "k", "q", "chi2", "dof", "p_value", "coef": {B: quartic coefficients in log10 lr}} where x_B's
    sampling error is A @ z (z standard normal, one per point); else {"used": False, "reason"}."""
    if sum(len(w[0]) >= FULL_WINDOW for w in windows.values()) < MIN_FULL_WINDOWS:
        return {"used": False, "reason": f"fewer than {MIN_FULL_WINDOWS} batch sizes with {FULL_WINDOW} points "
                                         "around their optimum"}
    bs = list(windows)
    xs, ys, sds = ([np.asarray(windows[b][i], float) for b in bs] for i in range(3))
    y, sd = np.concatenate(ys), np.concatenate(sds)
    if not (np.all(sd > 0) and np.all(np.isfinite(sd)) and np.all(np.abs(y) < 1e100)):
        return {"used": False, "reason": "no positive noise SD, or losses too large to fit"}
    with np.errstate(all="ignore"):
        r = optimize.least_squares(lambda p: (_model(p, xs) - y) / sd, _start(xs, ys), method="lm")
    a, c, xb, k, q = _unpack(r.x, len(bs))
    spans = [(x.min() - v, x.max() - v) for x, v in zip(xs, xb)]
    if not (r.success and np.all(c > 0) and np.all(np.isfinite(r.x)) and _single_minimum(k, q, spans)):
        return {"used": False, "reason": "no shared shape with a single minimum in every window"}
    chi2, dof = float(np.sum(r.fun**2)), len(y) - len(r.x)
    p_value = float(stats.f.sf(chi2 / dof, dof, noise_dof) if math.isfinite(noise_dof) else stats.chi2.sf(chi2, dof))
    if p_value < GOF_P:
        return {"used": False, "reason": f"the shared shape misses the points (χ² = {chi2:.1f} on {dof} dof, "
                                         f"p = {p_value:.2g})"}
    # linearised: δp = (JᵀJ)⁻¹Jᵀ z for standardised point errors z; scaled up when the points scatter more
    A = np.linalg.pinv(r.jac.T @ r.jac) @ r.jac.T * max(1.0, math.sqrt(chi2 / dof))
    rows = A[2 : 3 * len(bs) : 3]
    se = np.sqrt(np.sum(rows**2, axis=1))
    return {"used": True, "x": dict(zip(bs, map(float, xb))), "se": dict(zip(bs, map(float, se))),
            "draw": dict(zip(bs, rows)), "k": float(k), "q": float(q), "chi2": chi2, "dof": dof,
            "p_value": p_value, "level": dict(zip(bs, map(float, a))),
            "coef": {b: _coefficients(a[j], c[j], xb[j], k, q) for j, b in enumerate(bs)}}


def _coefficients(a, c, xb, k, q) -> list:
    """a + c(u² + k u³ + q u⁴) with u = x − xb as a polynomial in x, highest power first."""
    u = np.polynomial.Polynomial([-xb, 1.0])
    return [float(v) for v in (a + c * (u**2 + k * u**3 + q * u**4)).coef[::-1]]
