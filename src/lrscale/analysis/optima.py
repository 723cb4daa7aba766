"""Where lr_opt is for one batch size, how sure we are, and whether there is an optimum at all.

`locate` fits a quadratic in log10 lr through the best point and its neighbours (points two steps
out join, at half weight, only over a flat bottom, so an asymmetric curve does not drag the
vertex). Its uncertainty is the delta method through that fit, with the noise of one loss value
pooled over the whole sweep (`pooled_sigma`), plus what noise cannot explain: the shape bias of a
quadratic on an asymmetric curve, seen as the distance to a local cubic's minimum (`shape_bias`),
carried as an SE floor (`shape_floor`): the joint model of the loss surface (lrscale.analysis.surface)
is the answer, and these plain vertices are its two-stage cross-check, so they are not shifted.
`flags_for` says why an optimum cannot be used: edge (not bracketed), clipped (the vertex falls
outside its bracket), flat (no curvature above the noise), insufficient (< 3 finite points), and
grad_clipped (a confound, not an exclusion).
"""

import math

import numpy as np
from scipy import stats
from scipy.interpolate import Akima1DInterpolator

from .names import CLIPPED, EDGE, FLAT, GRAD_CLIPPED, INSUFFICIENT, NO_NOISE

FLOOR_STEPS = 0.02  # least SE of log10 lr_opt from shape bias, in grid steps
MIN_CURVATURE_T = 3.0  # local curvature below this many SEs: the optimum is not identifiable
CLIPPED_MAJORITY = 0.5  # grad_clipped: runs near lr_opt clipped on more than this fraction of steps


def seed_mean(table, ran=None):
    """Mean over the seeds run at each lr (`ran`: which cells exist; default all); an lr where any
    of them diverged counts as diverged (never fitted through)."""
    ran = np.ones(table.shape, bool) if ran is None else ran
    bad = (np.isnan(table) & ran).any(axis=0) | ~ran.any(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.sum(np.where(ran, np.nan_to_num(table, nan=0.0), 0.0), axis=0) / np.maximum(ran.sum(axis=0), 1)
    return np.where(bad, np.nan, mean)


def best_index(mean) -> int:
    """Index of the lowest finite loss (NaN = diverged)."""
    return int(np.nanargmin(np.where(np.isfinite(mean), mean, np.inf)))


def quad_fit(x, y, w=None):
    """Weighted least-squares y = a x^2 + b x + c; returns (a, b, c)."""
    return _quad_operator(x, w) @ y


def _quad_operator(x, w=None):
    """M with (a, b, c) = M y for the weighted quadratic fit: linear in y, so SEs follow exactly."""
    w = np.ones_like(x) if w is None else w
    A = np.vstack([x**2, x, np.ones_like(x)]).T * np.sqrt(w)[:, None]
    return np.linalg.pinv(A) * np.sqrt(w)[None, :]


def spacing(lrs) -> float:
    """The grid step in decades (median; half a decade for a single lr)."""
    return float(np.median(np.diff(np.log10(lrs)))) if len(lrs) > 1 else 0.5


def positions(lrs, grid_lrs=None) -> np.ndarray:
    """Each lr's place on the sweep's grid, in grid steps: its index when there is no separate grid
    (a fixed sweep), else interpolated on the grid's lrs (an adaptive round's lrs fall between grid
    points; beyond the ends, the end gaps continue)."""
    if grid_lrs is None or len(grid_lrs) < 2:
        return np.arange(len(lrs), dtype=float)
    x, xg = np.log10(lrs), np.log10(np.sort(grid_lrs))
    pos = np.interp(x, xg, np.arange(len(xg), dtype=float))
    pos = np.where(x < xg[0], (x - xg[0]) / (xg[1] - xg[0]), pos)
    return np.where(x > xg[-1], len(xg) - 1 + (x - xg[-1]) / (xg[-1] - xg[-2]), pos)


def at_position(p, grid_lrs) -> float:
    """log10 lr at grid position p (the inverse of `positions`)."""
    xg = np.log10(np.sort(grid_lrs))
    if p < 0:
        return float(xg[0] + p * (xg[1] - xg[0]))
    if p > len(xg) - 1:
        return float(xg[-1] + (p - len(xg) + 1) * (xg[-1] - xg[-2]))
    return float(np.interp(p, np.arange(len(xg)), xg))


def _near(pos, loss, i, steps=2) -> list:
    """The finite points within `steps` grid steps of the best point i: where the local fits live.
    (Planned lrs are snapped to their names, so an lr 2 steps out may sit a hair beyond 2.)"""
    return [j for j in range(len(loss)) if np.isfinite(loss[j]) and abs(pos[j] - pos[i]) <= steps + 0.05]


def fit_points(pos, loss, i, runs=None):
    """Indices and weights of the local quadratic around the best point i: its neighbours (on a
    grid with lrs added between grid points, everything closer than 2 grid steps), and the points 2
    steps out over a flat bottom (no lower than the inner ones) at half weight, so an asymmetric
    curve does not drag the vertex. Weights scale with the runs behind each mean."""
    runs = np.ones(len(loss)) if runs is None else np.asarray(runs, float)
    inner = set(_near(pos, loss, i, 1.9)) | {i - 1, i + 1}  # on a plain grid: i-1, i, i+1
    near = min(loss[j] for j in inner if j != i) - loss[i]
    sel = sorted(inner | {j for j in _near(pos, loss, i, 2) if loss[j] - loss[i] <= near})
    return sel, np.array([runs[j] * (1.0 if j in inner else 0.5) for j in sel])


def vertex(x, loss, sel, w, sd=None) -> dict | None:
    """Vertex of the weighted quadratic through loss[sel] and, when `sd` (SD of each loss value) is
    given, its SE by the delta method. None when it opens downwards."""
    M = _quad_operator(x[sel], w)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd losses (1e300) overflow: checked below
        a, b, c = M @ loss[sel]
        if not a > 0:
            return None
        xv = -b / (2 * a)
        if not np.isfinite(a * xv**2 + b * xv + c):
            return None
        out = {"x": float(xv), "coef": [float(a), float(b), float(c)]}
    if sd is not None:
        with np.errstate(over="ignore", invalid="ignore"):  # a vanishing curvature: an SE of inf (flagged flat)
            grad = np.array([b / (2 * a * a), -1 / (2 * a), 0.0]) @ M  # d xv / d loss[sel]
            se = math.sqrt(np.sum(grad**2 * np.asarray(sd, float)[sel] ** 2))
        out["grad"] = dict(zip(sel, grad))
        out["se"] = float(se) if math.isfinite(se) else math.inf
    return out


def side_unseen(pos, loss, i) -> bool:
    """Whether one side of the best point i holds a single finite point within 2 steps (the next one
    out diverged, or lies past the grid): there the curve's shape is unseen, the cubic that measures
    the quadratic's shape bias sees no asymmetry, and the vertex is known to its grid step only."""
    offsets = [pos[j] - pos[i] for j in _near(pos, loss, i)]
    return min(sum(o > 0 for o in offsets), sum(o < 0 for o in offsets)) < 2


def curvature_t(x, loss, i, sd, pos=None) -> float | None:
    """Curvature of a quadratic (inverse-variance weighted) over the finite points within 2 steps
    of the best, in SEs: the identifiability test (5 points pin a curvature ~5x better than 3)."""
    near = _near(np.arange(len(x)) if pos is None else pos, loss, i)
    if len(near) < 3:
        return None
    sd_near = np.asarray(sd, float)[near]
    M = _quad_operator(x[near], 1.0 / sd_near**2 if np.all(sd_near > 0) else None)  # σ = 0: unweighted
    with np.errstate(over="ignore", invalid="ignore"):
        a = float(M[0] @ loss[near])
    se_a = math.sqrt(np.sum(M[0] ** 2 * np.asarray(sd, float)[near] ** 2))
    if not math.isfinite(a):
        return None
    return a / se_a if se_a > 0 else (math.inf if a > 0 else -math.inf)


def cubic_vertex(x, loss, i, pos=None):
    """Minimum of a cubic through the finite points within 2 steps of the best (>= 4 of them) and
    its gradient with respect to those losses; None when there is no minimum near the best point.
    A cubic follows an asymmetric wall a quadratic cannot: their disagreement measures shape bias."""
    near = _near(np.arange(len(x)) if pos is None else pos, loss, i)
    if len(near) < 4:
        return None
    xs = x[near]
    M = np.linalg.pinv(np.vander(xs, 4))  # (c3, c2, c1, c0) = M y
    with np.errstate(over="ignore", invalid="ignore"):
        c3, c2, c1, _ = M @ loss[near]
        roots = np.roots([3 * c3, 2 * c2, c1]) if np.isfinite([c3, c2, c1]).all() else []
    roots = [r.real for r in roots if abs(r.imag) < 1e-12 and 6 * c3 * r.real + 2 * c2 > 0]
    roots = [r for r in roots if xs.min() <= r <= xs.max()]
    if not roots:
        return None
    xc = min(roots, key=lambda r: abs(r - x[i]))
    dcoef = -np.array([3 * xc**2, 2 * xc, 1.0, 0.0]) / (6 * c3 * xc + 2 * c2)  # implicit function theorem
    return xc, dict(zip(near, dcoef @ M))


def shape_bias(x, loss, i, v, sd, pos=None):
    """(d, Var d) for d = quadratic vertex − cubic minimum: beyond its noise Var d, d measures the
    quadratic vertex's shape bias (None when there is no cubic minimum)."""
    cub = cubic_vertex(x, loss, i, pos)
    if cub is None or "grad" not in v:
        return None
    xc, g_cubic = cub
    g = {j: v["grad"].get(j, 0.0) - g_cubic.get(j, 0.0) for j in set(v["grad"]) | set(g_cubic)}
    return v["x"] - xc, float(sum(gj**2 * float(sd[j]) ** 2 for j, gj in g.items()))


def locate(lrs, loss, estimator="parabola", sd=None, runs=None, grid_lrs=None):
    """lr_opt for one batch size from seed-mean losses (`runs`: runs behind each mean, default 1;
    `grid_lrs`: an adaptive sweep's grid, on which the local windows are measured). Returns
    dict(lr_opt, loss_opt, i_best, parabola, x_vertex, clipped, bracket, step, se_log10, curvature_t,
    shape_bias); the last three need `sd` (per-point SD)."""
    x, pos = np.log10(lrs), positions(lrs, grid_lrs)
    finite = np.isfinite(loss)
    i = best_index(loss)
    step = spacing(lrs if grid_lrs is None else np.sort(grid_lrs))
    out = {"lr_opt": float(lrs[i]), "loss_opt": float(loss[i]), "i_best": i, "parabola": None, "step": step,
           "x_vertex": None, "clipped": False, "se_log10": None, "curvature_t": None, "shape_bias": None,
           "side_unseen": side_unseen(pos, loss, i)}
    if not (i > 0 and finite[i - 1] and i < len(x) - 1 and finite[i + 1]):
        return out  # edge: the optimum is not bracketed, keep the grid point (flagged by the caller)
    sel, w = fit_points(pos, loss, i, runs)
    v = vertex(x, loss, sel, w, sd)
    if v is None:
        return out  # opens downwards or cannot be evaluated: keep the grid point
    lo, hi = _bracket(x, pos, finite, i, grid_lrs)
    xv = float(np.clip(v["x"], lo, hi))  # the lr reported stays in the bracket ...
    out.update(x_vertex=v["x"], clipped=bool(xv != v["x"]), se_log10=v.get("se"),  # ... and is flagged
               bracket=[float(10**lo), float(10**hi)],
               curvature_t=None if sd is None else curvature_t(x, loss, i, sd, pos),
               shape_bias=None if sd is None else shape_bias(x, loss, i, v, sd, pos))
    if estimator == "argmin":  # the grid point: its error is the quantisation (uniform over one step) too
        out["side_unseen"] = False  # ... counted here once
        if out["se_log10"] is not None:
            out["se_log10"] = math.sqrt(out["se_log10"] ** 2 + step**2 / 12)
        return out
    if estimator == "spline":
        return {**out, **_spline(x, loss, finite, i, sd)}
    a, b, c = v["coef"]
    return {**out, "lr_opt": float(10**xv), "loss_opt": float(a * xv**2 + b * xv + c), "parabola": v["coef"]}


SPLINE_SE_DRAWS = 100  # redraws behind the spline's SE (its Monte Carlo error: ~7% of the SE)


def _spline(x, loss, finite, i, sd) -> dict:
    """The Akima spline's minimum between the best point's neighbours, and its SE: the SD of that
    minimum over redraws of the points it passes through with their own SDs (the spline's own
    scatter, not a quadratic's; None without SDs). The redraws are seeded: the same input, the same SE."""
    idx = np.flatnonzero(finite)
    run = idx[(idx >= i - 3) & (idx <= i + 3)]
    grid = np.linspace(x[i - 1], x[i + 1], 401)

    def minimum(values):
        curve = Akima1DInterpolator(x[run], values)(grid) if len(run) >= 3 else np.interp(grid, x[run], values)
        j = int(np.nanargmin(curve))
        return grid[j], curve[j]

    x_min, loss_min = minimum(loss[run])
    se = None
    if sd is not None:
        rng = np.random.default_rng(0)
        sds = np.broadcast_to(np.asarray(sd, float), loss.shape)[run]
        se = float(np.std([minimum(loss[run] + rng.normal(0, sds))[0] for _ in range(SPLINE_SE_DRAWS)]))
    return {"lr_opt": float(10**x_min), "loss_opt": float(loss_min), "se_log10": se}


def _bracket(x, pos, finite, i, grid_lrs) -> tuple[float, float]:
    """log10 lrs the vertex must lie between: the best point's neighbours, widened to one grid step
    a side when an adaptive round put lrs close to it, never past an lr that diverged."""
    if grid_lrs is None:
        return x[i - 1], x[i + 1]
    lo, hi = min(x[i - 1], at_position(pos[i] - 1, grid_lrs)), max(x[i + 1], at_position(pos[i] + 1, grid_lrs))
    bad_lo, bad_hi = x[:i][~finite[:i]], x[i + 1 :][~finite[i + 1 :]]
    return (max(lo, bad_lo.max()) if len(bad_lo) else lo), (min(hi, bad_hi.min()) if len(bad_hi) else hi)


def unbracketed(finite, i) -> tuple[int, bool] | None:
    """Where the best lr (index i) is not bracketed: (side, beyond), side -1 below it or +1 above;
    beyond: it is the edge of the lrs tried (add lrs past it), else its neighbour on that side
    diverged (add the midpoint). None when bracketed. The one rule of the fit's `edge` flag and of
    the adaptive planner's extensions: an edge first, then a diverged upper, then lower neighbour."""
    if i in (0, len(finite) - 1):
        return (-1 if i == 0 else 1), True
    if not finite[i + 1]:
        return 1, False
    if not finite[i - 1]:
        return -1, False
    return None


def lrs_to_bracket(lrs, i, side: int, beyond: bool, step: float, n: int = 2) -> list[float]:
    """The lrs that move toward bracketing it (`unbracketed`): n lrs `step` decades apart past the
    edge, or the geometric midpoint between the best lr and its diverged neighbour."""
    if beyond:
        return [lrs[i] * 10 ** (side * step * k) for k in range(1, n + 1)]
    return [math.sqrt(lrs[i] * lrs[i + side])]


def _edge_reason(lrs, finite, i, h) -> str | None:
    """Why the best lr is not bracketed, with the lrs to add (None when it is bracketed)."""
    where = unbracketed(finite, i)
    if where is None:
        return None
    side, beyond = where
    what = ("smallest", "lower") if side < 0 else ("largest", "upper")
    text = f"is the {what[0]} lr tried" if beyond else f"has its {what[1]} neighbour {lrs[i + side]:.3g} diverged"
    add = lrs_to_bracket(lrs, i, side, beyond, h)
    return f"best lr {lrs[i]:.3g} {text}; add lr {', '.join(f'{v:.3g}' for v in add)} to bracket it"


def flags_for(lrs, mean, loc, se_log10, noise: dict, clipped=None) -> dict:
    """Flags with reasons for one batch size. `loc`: locate's result (None: < 3 finite points);
    `noise`: pooled sigma, dof, source; `clipped`: clipped_fraction per (seed, lr), NaN = unknown."""
    finite = np.isfinite(mean)
    if loc is None:
        return {INSUFFICIENT: f"{int(finite.sum())} finite point(s); expected at least 3"}
    flags, i, h = {}, loc["i_best"], loc["step"]
    edge = _edge_reason(lrs, finite, i, h)
    if edge:
        flags[EDGE] = edge
    elif loc["x_vertex"] is None:
        flags[FLAT] = "the local quadratic has no minimum (it opens downwards)"
    elif loc["clipped"]:
        lo, hi = loc["bracket"]
        edge_lr = lo if loc["x_vertex"] < math.log10(lrs[i]) else hi  # the side the vertex fell out of
        add = edge_lr * (edge_lr / lrs[i]) ** 0.5  # half a bracket beyond its edge
        flags[CLIPPED] = (f"vertex at lr {_lr_text(loc['x_vertex'])} lies outside the bracket [{lo:.3g}, "
                            f"{hi:.3g}] (kept at its edge); add lr {add:.3g} to pin it")
    if noise["sigma"] is None and not edge:
        flags[NO_NOISE] = "no noise estimate (one seed, too few points, no train_loss_std): lr_opt has no SE"
    elif loc["curvature_t"] is not None and loc["curvature_t"] < MIN_CURVATURE_T:
        flags[FLAT] = (f"local curvature t = {loc['curvature_t']:.2f} < {MIN_CURVATURE_T:g} (noise sigma "
                         f"{noise['sigma']:.3g} from {noise['source']}): no identifiable optimum")
    elif se_log10 is not None and se_log10 > h and not edge:
        flags[FLAT] = f"lr_opt SE {se_log10:.2f} decades exceeds the grid step {h:.2f}: the optimum is not pinned"
    frac = _clipped_near(clipped, i)
    if frac is not None and frac > CLIPPED_MAJORITY:
        flags[GRAD_CLIPPED] = (f"gradient clipping active on {frac:.0%} of steps near lr_opt: the step follows "
                                 "clip/||g||, not the nominal lr")
    return flags


def _lr_text(log10_lr: float) -> str:
    """An lr given by its log10 for a message; a nearly flat parabola's vertex can lie past 1e308."""
    return f"{10**log10_lr:.3g}" if abs(log10_lr) < 300 else f"1e{log10_lr:.0f}"


def _clipped_near(clipped, i):
    """Mean clipped fraction of the runs at the best lr and its neighbours (None: unknown)."""
    if clipped is None:
        return None
    near = clipped[:, max(i - 1, 0) : i + 2]
    return float(np.nanmean(near)) if np.isfinite(near).any() else None


Z95 = 1.959964  # the normal quantile at 97.5%


def ci95(lr_opt, se_log10, dof, unseen=0.0):
    """95% CI of lr_opt from the SE of log10 lr_opt (t quantile with the noise estimate's dof) and an
    unseen side's quantisation (unseen_floor: a bound, not noise, so at the normal quantile)."""
    q = float(stats.t.ppf(0.975, dof)) if dof and math.isfinite(dof) else Z95
    half = min(math.hypot(q * se_log10, Z95 * unseen), 30.0)  # an unidentified vertex (flagged flat) can have any SE
    return [lr_opt / 10**half, lr_opt * 10**half]


def shape_floor(biases, step) -> tuple[float, float]:
    """(total, varying): SDs of the quadratic vertex's shape bias over the sweep's batch sizes, from
    their (d, Var d). Most of the bias is one shift common to every B (it moves lr_opt, not β); the rest, the variance of d
    beyond noise, is carried by the fits of lr_opt(B). Each at least FLOOR_STEPS grid steps."""
    least = (FLOOR_STEPS * step) ** 2
    pairs = [(d, var) for d, var in biases if math.isfinite(d) and math.isfinite(var)]
    if len(pairs) < 2:
        return math.sqrt(least), math.sqrt(least)
    d, var = np.array(pairs).T
    total = float(np.mean(d**2 - var))
    varying = float(np.var(d, ddof=1) - np.mean(var))
    return math.sqrt(max(total, least)), math.sqrt(max(varying, least))


def unseen_floor(loc) -> float:
    """SD of the shape bias a B's own vertex may carry where a side of its optimum is unseen
    (side_unseen): the grid step's quantisation, step/√12 (uniform over one step), else 0. A quadratic
    through one point of a steep wall missed the vertex by 0.09 decade on a 0.5-decade grid, where the
    sweep's floor, measured on the B whose both sides were seen, put the CI's half-width near 0.06."""
    placed = loc and loc.get("x_vertex") is not None  # an edge or flat B's SE is a whole step already
    return loc["step"] / math.sqrt(12) if placed and loc.get("side_unseen") else 0.0


def total_se(se_noise, floor) -> float:
    """SE of log10 lr_opt: the noise part and the shape floor, in quadrature."""
    return math.sqrt(se_noise**2 + floor**2)


FOURTH_DIFFERENCE = np.array([1.0, -4, 6, -4, 1]) / math.sqrt(70)  # a 5-point cubic's residual, unit norm


def seed_spread(lrs_by_b: dict, tables: dict, ran=None, grids=None) -> dict:
    """B -> (sum of squares, dof) of the within-cell seed spread of every (B, lr) cell near its
    optimum (best ± 2 steps, where the fits live; far-off runs near divergence are noisier and say
    nothing about the vertex). dof 0: no repeats there."""
    ran, grids, out = ran or {}, grids or {}, {}
    for b, table in tables.items():
        mean = seed_mean(table, ran.get(b))
        if np.isfinite(mean).sum() < 3:
            continue
        cells = table[:, _near(positions(lrs_by_b[b], grids.get(b)), mean, best_index(mean))]
        ok = np.isfinite(cells).sum(axis=0) >= 2
        with np.errstate(over="ignore", invalid="ignore"):
            ss = float(np.nansum((cells[:, ok] - np.nanmean(cells[:, ok], axis=0)) ** 2))
        out[b] = (ss, int(np.sum(np.isfinite(cells[:, ok]).sum(axis=0) - 1)))
    return out


def pooled_sigma(lrs_by_b: dict, tables: dict, noise_fallback=None, ran=None, grids=None):
    """(sigma, dof, source): the SD of one run's loss, pooled over the whole sweep.

    Several seeds: `seed_spread` summed over B. One seed: `_cubic_residual_sigma`. Else
    train_loss_std. (lrscale.analysis.loss_noise models σ per B from the same spreads.)"""
    ran, grids = ran or {}, grids or {}
    if not any(np.sum(np.isfinite(t), axis=0).max(initial=0) >= 2 for t in tables.values()):
        return _cubic_residual_sigma(lrs_by_b, tables, noise_fallback, ran, grids)
    spread = seed_spread(lrs_by_b, tables, ran, grids).values()
    return _sigma_or_fallback(sum(ss for ss, _ in spread), sum(d for _, d in spread), "seed spread", noise_fallback)


def _cubic_residual_sigma(lrs_by_b, tables, noise_fallback, ran, grids):
    """One seed: residuals of local 5-point cubics (a cubic absorbs most of an asymmetric wall).
    What it cannot absorb is the same on every B of a plain grid (their curves share a shape), so
    there the residual's mean over B is removed first (one dof): the raw residuals overstated σ
    2.2x on a steep-walled curve. Irregular windows (adaptive rounds) count their raw residuals."""
    regular, ss, dof = [], 0.0, 0
    for b, table in tables.items():
        mean = seed_mean(table, ran.get(b))
        if np.isfinite(mean).sum() < 3:
            continue
        i = best_index(mean)
        pos = positions(lrs_by_b[b], grids.get(b))
        near = _near(pos, mean, i)
        if len(near) < 5:
            continue
        if len(near) == 5 and np.allclose(pos[near] - pos[i], np.arange(-2, 3), atol=0.05):
            regular.append(float(FOURTH_DIFFERENCE @ mean[near]))
            continue
        x = np.log10(lrs_by_b[b])[near]
        with np.errstate(over="ignore", invalid="ignore"):
            ss += float(np.sum((mean[near] - np.polyval(np.polyfit(x, mean[near], 3), x)) ** 2))
        dof += len(near) - 4
    if regular:  # a single one keeps its raw residual (no mean to remove)
        with np.errstate(over="ignore", invalid="ignore"):
            ss += float(np.sum((np.array(regular) - (np.mean(regular) if len(regular) > 1 else 0.0)) ** 2))
        dof += max(len(regular) - 1, 1)
    return _sigma_or_fallback(ss, dof, "local cubic residuals", noise_fallback)


def _sigma_or_fallback(ss, dof, source, noise_fallback):
    if dof and math.isfinite(ss):
        return math.sqrt(ss / dof), dof, source
    if noise_fallback:
        return float(noise_fallback), math.inf, "train_loss_std"
    return None, 0, "none"
