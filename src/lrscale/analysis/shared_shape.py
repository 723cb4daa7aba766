"""One local curve shape shared by every batch size: each B's optimum, once the shape of the loss
around it is learnt from the whole sweep.

A quadratic through three points cannot follow an asymmetric curve (a steep wall above the
optimum): its vertex lands off the optimum by an amount that changes with where the optimum falls
between grid points. Around their optima the loss curves of a sweep's batch sizes often share a
shape and differ in place, level and width, so the points within 2 grid steps of each B's best
are fitted at once by

    loss = a_B + c_B · (u² + k·u³ + q·u⁴),   u = log10 lr − x_B

per B: level a_B, curvature c_B, optimum x_B; shared: the asymmetry k (1/decade) and q
(1/decade²). The optimum is u = 0 exactly, and x_B's SE comes from the fit's covariance, the
uncertainty of k and q included. Five points per B pin x_B about twice as well as three, and the
shared k, q take the asymmetry out instead of leaving a phase bias. It is used only when the
shape is shared, by two tests: against the noise (χ²) and against each full window having its own
asymmetry k_B (an F test that needs no σ); and when every optimum is the only stationary point of
its window and lies in its B's bracket. Otherwise the caller keeps its per-B quadratics
(`optima.locate`). With one seed neither test has the power to see shapes that differ (σ then
comes from the same few residuals), so the caller asks for a noise estimate of its own: the
spread of seeds.
"""

import math

import numpy as np
from scipy import optimize, stats

from .forms import gof_p

MIN_FULL_WINDOWS = 3  # batch sizes with 5 points each: enough to learn the shared k and q
FULL_WINDOW = 5
GOF_P = 0.01  # a χ² p-value below this: the shared shape does not describe the points
SHARED_P = 0.05  # own asymmetries fit better at this level: the shape is not shared (a wrong "shared" costs more)


def _parts(p, n, k_index):
    """(a, c, x, k, q) per B from the parameter vector [a, c, x] * n + k's + [q]."""
    return p[0 : 3 * n : 3], p[1 : 3 * n : 3], p[2 : 3 * n : 3], p[3 * n : -1][k_index], p[-1]


def _model(p, xs, k_index):
    """The curves at every window's points, concatenated (k_index: which k each window uses)."""
    a, c, xb, k, q = _parts(p, len(xs), k_index)
    return np.concatenate([a[j] + c[j] * ((x - xb[j]) ** 2 + k[j] * (x - xb[j]) ** 3 + q * (x - xb[j]) ** 4)
                           for j, x in enumerate(xs)])


def _solve(xs, y, sd, p0, k_index):
    with np.errstate(all="ignore"):
        return optimize.least_squares(lambda p: (_model(p, xs, k_index) - y) / sd, p0, method="lm")


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


def own_asymmetry_p(xs, y, sd, shared) -> float | None:
    """p-value of the F test of the shared shape against one where every full window has its own k
    (the rest keep one k between them): σ cancels. None when the alternative cannot be fitted."""
    n, full = len(xs), [len(x) >= FULL_WINDOW for x in xs]
    k_index = np.cumsum(full) - 1
    if not all(full):
        k_index = np.where(full, k_index, sum(full))
    n_k = int(k_index.max()) + 1
    p0 = np.concatenate([shared.x[: 3 * n], np.full(n_k, shared.x[-2]), shared.x[-1:]])
    own = _solve(xs, y, sd, p0, k_index)
    rss_shared, rss_own = float(np.sum(shared.fun**2)), float(np.sum(own.fun**2))
    df1, df2 = n_k - 1, len(y) - len(p0)
    if rss_shared <= 1e-20 * len(y):  # the shape fits (noiselessly): nothing to test
        return 1.0
    if df1 < 1 or df2 < 1 or not own.success or rss_own <= 0:
        return None  # cannot be checked
    return float(stats.f.sf(max(rss_shared - rss_own, 0.0) / df1 / (rss_own / df2), df1, df2))


def fit(windows: dict, brackets: dict | None = None, noise_dof=math.inf) -> dict:
    """Fit the shared shape to `windows` {B: (log10 lrs, seed-mean losses, SD of each)}, each of ≥ 3
    points; `brackets` {B: (lo, hi)}: log10 lrs each optimum must lie between. Returns {"used": True,
    "x": {B: log10 lr_opt}, "se": {B: SE}, "se_dof", "draw": {B: row of A}, "k", "q", "chi2", "dof",
    "p_value", "p_shared", "level", "coef": {B: quartic in log10 lr}}, where x_B's sampling error is
    A @ z (z standard normal, one per point); else {"used": False, "reason"} with the tests' p-values
    once they ran, and "shapes_differ": True when a test rejected the shape."""
    if sum(len(w[0]) >= FULL_WINDOW for w in windows.values()) < MIN_FULL_WINDOWS:
        return _declined(f"fewer than {MIN_FULL_WINDOWS} batch sizes with {FULL_WINDOW} points around their optimum")
    bs = list(windows)
    xs, ys, sds = ([np.asarray(windows[b][i], float) for b in bs] for i in range(3))
    y, sd = np.concatenate(ys), np.concatenate(sds)
    if not (np.all(sd > 0) and np.all(np.isfinite(sd)) and np.all(np.abs(y) < 1e100)):
        return _declined("no positive noise SD, or losses too large to fit")
    r = _solve(xs, y, sd, _start(xs, ys), np.zeros(len(bs), int))
    if not (r.success and np.all(np.isfinite(r.x))):
        return _declined("the shared-shape fit did not converge")
    chi2, dof = float(np.sum(r.fun**2)), len(y) - len(r.x)
    p_value = gof_p(chi2, dof, noise_dof)
    p_shared = own_asymmetry_p(xs, y, sd, r)
    tests = {"p_value": p_value, "p_shared": p_shared}
    if p_value < GOF_P or (p_shared is not None and p_shared < SHARED_P):  # evidence the shapes differ
        return {**_declined(f"the shared shape misses the points (χ² = {chi2:.1f} on {dof} dof, p = {p_value:.2g}; "
                            f"against an asymmetry of its own per B, p = {_p(p_shared)})"), **tests,
                "shapes_differ": True}
    if p_shared is None:
        return {**_declined("the shared shape could not be checked against an asymmetry of its own per B"), **tests}
    a, c, xb, k, q = _parts(r.x, len(bs), np.zeros(len(bs), int))
    k, spans = float(k[0]), [(x.min() - v, x.max() - v) for x, v in zip(xs, xb)]
    if not (np.all(c > 0) and _single_minimum(k, q, spans)):
        return {**_declined("no shared shape with a single minimum in every window"), **tests}
    outside = [b for b, v in zip(bs, xb) if brackets and not brackets[b][0] <= v <= brackets[b][1]]
    if outside:
        return {**_declined(f"the shared shape puts the optimum of B={', '.join(map(str, outside))} outside its "
                            "bracket"), **tests}
    # linearised: δp = (JᵀJ)⁻¹Jᵀ z for standardised point errors z; scaled up when the points scatter more
    inflate = max(1.0, math.sqrt(chi2 / dof))
    rows = (np.linalg.pinv(r.jac.T @ r.jac) @ r.jac.T)[2 : 3 * len(bs) : 3] * inflate
    se = np.sqrt(np.sum(rows**2, axis=1))
    return {"used": True, "x": dict(zip(bs, map(float, xb))), "se": dict(zip(bs, map(float, se))),
            "se_dof": dof if inflate > 1 else noise_dof, "draw": dict(zip(bs, rows)),  # inflated: σ from residuals
            "k": k, "q": float(q), "chi2": chi2, "dof": dof, "p_value": p_value, "p_shared": p_shared,
            "level": dict(zip(bs, map(float, a))),
            "coef": {b: _coefficients(a[j], c[j], xb[j], k, q) for j, b in enumerate(bs)}}


def _declined(reason: str) -> dict:
    return {"used": False, "reason": reason}


def _p(p) -> str:
    return "—" if p is None else f"{p:.2g}"


def _coefficients(a, c, xb, k, q) -> list:
    """a + c(u² + k u³ + q u⁴) with u = x − xb as a polynomial in x, highest power first."""
    u = np.polynomial.Polynomial([-xb, 1.0])
    return [float(v) for v in (a + c * (u**2 + k * u**3 + q * u**4)).coef[::-1]]
