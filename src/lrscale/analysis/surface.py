"""One model of the whole loss surface (issue 23.1): every run near its batch size's optimum at once,

    loss(B, lr) = a_B + c_B · g(u; k₊(B), k₋(B)),   u = log10 lr − (m + β·log10(B / B_ref)),
    g(u) = u² + k₊·max(u, 0)³ + k₋·max(−u, 0)³,     k±(B) linear in log B, in [0, K_MAX] at both ends,

so lr_opt(B) = 10^m·(B / B_ref)^β is a power law, each batch size has its own floor a_B and curvature c_B,
and the loss shape around the optimum (how much steeper the wall above it is than the slope below)
drifts with log B as estimated nuisance parameters instead of a pass/fail gate. a_B and c_B enter
linearly and are solved exactly for every value of the rest (variable projection), so the search is
over 6 parameters whatever the number of batch sizes.

σ is the residual scatter (RSS / dof): it holds the seed spread and whatever the model misses, so a
loss shape outside the family widens the CI instead of hiding in it. Small batches are often
noisier: σ(B) = σ·(B/B_ref)^ω, ω the slope of the log squared residuals on log B, and the fit is
refitted with weights 1/σ(B)² (one step of feasible GLS; ω and its t test's p are reported), so the
noisy end no longer sets the answer nor the quiet end inherits its scatter. The profile holds ω fixed, yet
β̂ moves with the weights: β refitted at ω ± its SE gives that move, added in quadrature to each side of
β's CI (_omega_widen; on σ ∝ B^-½ with β = 1, asymmetric curves, 2 seeds, the error's spread in CI units was
1.09 with ω estimated, 1.02 with ω held at its truth: bench/README.md, "ω's uncertainty"). The bend's slopes
and the forms' B_noise get no such term. It is modelled whatever
that p (TREND_P = 1) wherever a dof is to spare: one seed's residuals show a real trend to a 5% test in
only about half the sweeps, and a trend left out is the costlier error. β's 95% CI is the
profile likelihood's: the βs whose refitted (weighted) RSS rises above the minimum by less than
s²·F(1, dof). That s² is the runs' scatter, which measures β only while each batch size's lr_opt
lies on the curve: refitted with every B's lr_opt free (the shape shared), a curve that misses them
by more than the runs' scatter (an F test at LOF_P: `lack_of_fit`) has its CIs widened to at least
the t-CIs (n_B − k dof) that those departures give the curve in log10 lr_opt (a split-plot's
whole-plot error) about the least-squares line through those lr_opt themselves, centred on it: the
CI then also holds the average slope of lr_opt over the bracketed batch sizes, unweighted, where the joint
fit (β̂, still the answer), which weighs each B by what its runs hold and trades the line against the loss
shape's drift, puts it elsewhere (sizing the
profile itself by the departures was tried and dropped: bench/README.md, "When lr_opt leaves its curve").

The power law is tested against a bend: lr_opt(B) a broken line in log-log, one slope below the
middle batch size used and another above it (one more parameter, an F test at BEND_P). Its two
slopes are what the verdict reports when lr_opt bends, with CIs given that the test fired (_selective_ci:
the Wald CIs of a false bend's slopes covered 0.62-0.78, the test having picked the sweeps whose slopes
fell far by chance): an average slope over each
half of the range, not a derivative at one B (which no sweep of 7 batch sizes pins down); there their
CIs are at least the delete-one-B jackknife's (_jackknife: a batch size whose own lr_opt sits apart at
the end of a half pulls the line to itself and hides from its residuals). The
bending forms of lr_opt(B) (McCandlish, surge) are fitted to every run the same way and compared with
the power law by RSS (fit_forms): whether lr_opt takes one of them, and its B_noise, come from the
losses, not from per-B optima (whose form test took the one-seed noise of the small batch sizes for
a bend: bench/README.md, "Why the verdict declines"). A preferred bending form leaves the hypotheses
untested even where the broken line's F test does not fire (the forms bend where the data put the
knee; the broken line bends at the middle batch size).

Runs used: per batch size, the finite runs within WINDOW_DECADES of its best lr (the lowest
seed-mean loss). A diverged run is not a loss the smooth shape g continues to: divergence is a cliff
(an lr past the stability edge), and a bowl can end in one before it has risen much. So diverged runs
are read as a bound on where the optimum can be, not as losses: at each batch size, the lowest lr above
its best at which a run diverged (its stability edge, `stability_edge`) caps the modelled lr_opt
there (one-sided: an lr_opt past the edge adds EDGE_STIFFNESS·(its excess in decades)·(the losses'
spread) to the residuals, zero below the edge). The cap changes no estimate whose optimum lies below
the edge; it cuts the profile CI where the data above the optimum are missing because those runs
diverged, and it brackets an optimum that lies between the last finite lr and the edge. Where the cap
holds lr_opt (`lr_opt_at_edge`: the fit would put the bowl's bottom past the edge), the best lr there
is where training breaks, not the bottom of a bowl, one power law bends to fit both regimes, and the
verdict tests no hypothesis (an F test of the cap, and censoring a diverged run's loss, were tried and
dropped: bench/README.md, "Diverged runs: the stability edge").
An optimum the cap brackets but does not hold, above the highest lr read (`open_edge`), is the bowl's
bottom extrapolated from one side: whether training breaks before it is unseen, and the verdict tests
no hypothesis whose standing changes anywhere between the fit and training breaking right above that lr
(at any of the open batch sizes, each on its own).
An lr above the best where only some seeds diverged is an edge too, and its survivors are left out:
they are the runs that stayed calm, not a sample of that lr (bench/README.md, "Partly diverged lrs and
unseen sides"). Absent runs hold nothing. A batch size at the grid's edge contributes the half bowl it
holds; a flat one (no curvature: the per-B fit's flag) is read too, its c_B near 0 (or below: a hump)
placing little and its runs holding σ: whether the losses hold a bowl at all is the model's own test
(_bowl_p: a one-sided F test against a flat line at each batch size; above BOWL_P no joint model), where
the per-B flat flag skipped them one by one, and a batch size counts toward MIN_INSIDE and holds a vertex
for the lack of fit only where c_B > 0. Assumption named in the verdict: one power law for lr_opt(B) and a
loss shape inside the family above.
"""

import math
from typing import NamedTuple

import numpy as np
from scipy import optimize, stats

from .loss_noise import within_run_sigma
from .names import BENDING, MCCANDLISH, NO_FORM, POWER_LAW, UNDECIDED

WINDOW_DECADES = 1.0  # runs farther from a B's best lr are left to the local shape (g is a local model)
MIN_POINTS_PER_B, MIN_BATCHES = 3, 3
MAX_DECADES = 300.0  # a modelled lr_opt past 1e±300 (an absurd β through 2 bracketed optima) is no answer
MIN_INSIDE = 2  # batch sizes whose modelled lr_opt lies among the lrs they ran: fewer, and β is the loss
# shape's extrapolation past the grid (one sweep at the grid's edge answered β = −140 [−148, 2541])
BEND_P = 0.05  # the power law is rejected for a bend at this p (a false bend 5% of the time)
N_SHAPE = 4  # k₊ and k₋ at the smallest and at the largest B used (linear in log B between)
K_MAX = 30.0  # a cubic term 30x the quadratic's at one decade: a wall, not a bowl
FORM_MARGIN = 2.0  # two bending forms (2 parameters each, not nested) whose RSS differ by less than 2·s²:
# undecided (a likelihood ratio under e: Burnham & Anderson's "substantial support" for both)
HELD_DECADES = 0.01  # an lr_opt this close under its stability edge is held there by the cap (the
# stiffness lets it past by ~0.001 decade; a free optimum this close is the edge at any grid's resolution)
B_NOISE_REACH = 3.0  # decades beyond the batch sizes run where a CI end on B_noise is reported as open
EDGE_STIFFNESS = 100.0  # an lr_opt 0.01 decade past a stability edge costs one residual of the losses' spread:
# in effect a hard bound, kept smooth for the solver
LOF_P = 0.05  # each B's own lr_opt departs from the curve by more than the runs' scatter at this p: the
# curve's CIs are sized by those departures (lack_of_fit; set before any run, the conventional 5%)
MIN_PURE_DOF = 3  # the free-vertex fit needs this many dof for the runs' scatter, else no lack-of-fit test
BOWL_P = 0.01  # the losses hold no bowl (the model against a flat line at each B) above this p: no joint model.
# Set before any run; a benchmark or demo sweep's bowl sits at p far below it (pure noise: 0.43-1.0)
TREND_P = 1.0  # σ(B) is modelled when the residuals' trend in log B has p at or below this: 1, always (a dof to
# spare). A 5% test let a real σ ∝ B^-½ through in only half the one-seed sweeps, and the missed ones put the
# noisiest B at the lever's end (β = 1, asymmetric, one seed: coverage 0.885 -> 0.910 on 400 paired sweeps);
# a false trend costs little: ω near 0 weighs every B about equally (bench/README.md, TREND_P)


class _Points(NamedTuple):
    """What the model reads of a sweep (see _points)."""

    used: list  # the batch sizes read
    pts: np.ndarray  # (B, log10 lr, loss) of every run read
    diverged: int  # runs of those batch sizes that diverged (non-finite loss: not read as losses)
    past_edge: int  # their finite runs at or past the stability edge (the survivors at a partly
    # diverged lr and every run above it: not read either)
    edges: dict  # {B: log10 of the lowest lr above its best at which a run diverged}
    next_to_edge: set  # B whose edge lies right above the highest lr read (an optimum up to it is bracketed)


def _points(sweep) -> _Points:
    """The runs the model reads: per batch size, the finite runs within WINDOW_DECADES
    of its best lr and below its stability edge. The best lr is one where no run diverged, if there
    is one (the survivors' mean at an lr where some seeds diverged flatters it)."""
    rows, used, diverged, past_edge, edges, next_to_edge = [], [], 0, 0, {}, set()
    for b in sweep.batch_sizes:
        loss, x = sweep.losses[b], np.log10(sweep.lrs[b])
        finite = np.isfinite(loss)
        if not finite.any():
            continue
        ran = sweep.ran_mask(b)
        with np.errstate(invalid="ignore"):
            mean = np.where(finite, loss, 0).sum(axis=0) / finite.sum(axis=0)
        some_diverged = (~finite & ran).any(axis=0)
        clean = finite.any(axis=0) & ~some_diverged
        best = x[int(np.nanargmin(np.where(clean, mean, np.nan) if clean.any() else mean))]
        unstable = some_diverged & (x > best)  # a run diverged: its survivors are the calm ones
        edge = float(x[unstable].min()) if unstable.any() else math.inf
        near = (np.abs(x - best) <= WINDOW_DECADES + 1e-9) & (x < edge)  # nothing at or past the edge is a loss
        seed_i, lr_i = np.nonzero(finite & near[None, :])
        if len(set(lr_i)) < MIN_POINTS_PER_B:
            continue
        used.append(b)
        diverged += int((~finite & ran).sum())
        if unstable.any():
            edges[b] = edge
            past_edge += int((finite & (x >= edge)[None, :]).sum())
            top = x[lr_i].max()
            if not (finite.any(axis=0) & (x > top) & (x < edges[b])).any():
                next_to_edge.add(b)
        rows += [(b, x[j], loss[s, j]) for s, j in zip(seed_i, lr_i)]
    return _Points(used, np.array(rows, float).reshape(-1, 3), diverged, past_edge, edges, next_to_edge)


def _shape(u, t, k):
    """g(u) with k± interpolated at t = 0 (smallest B used) .. 1 (largest)."""
    kp, km = k[0] + (k[1] - k[0]) * t, k[2] + (k[3] - k[2]) * t
    return u**2 + kp * np.maximum(u, 0) ** 3 + km * np.maximum(-u, 0) ** 3


LN10 = math.log(10)
M, BETA, GAMMA = 0, 1, 2  # positions in the parameter vector (m, β, γ, k₊ small, k₊ large, k₋ small, k₋ large)
N_LINE = 3


class _Model:
    """The data and the variable-projection residuals of one sweep. log10 lr_opt(B) = m + β·l + γ·l₊,
    l = log10(B / B_ref), l₊ = max(log10(B / B_knot), 0), B_knot the middle batch size used: γ = 0 is
    the power law; γ free is the bend it is tested against (slope β below B_knot, β + γ above).
    `edges`: the stability edges that cap lr_opt (see the module's docstring). `form`: lr_opt(B) as a
    power law (above) or a bending form of fit_forms, whose second parameter (at BETA) is then
    log10 B_noise."""

    def __init__(self, used, pts, b_ref, edges=None, next_to_edge=(), form=POWER_LAW, knot=None, w=None):
        self.used, self.pts, self.b_ref, self.form = used, pts, b_ref, form
        self.group = np.searchsorted(np.array(used), pts[:, 0].astype(int))
        self.x, self.y = pts[:, 1], pts[:, 2]
        self.l10 = np.log10(pts[:, 0] / b_ref)
        self.knot = knot or used[len(used) // 2]
        self.above = np.maximum(np.log10(pts[:, 0] / self.knot), 0.0)
        span = math.log(max(used) / min(used))
        self.t = np.log(pts[:, 0] / min(used)) / span  # 0 at the smallest B used, 1 at the largest
        self.w = np.ones_like(self.y) if w is None else w  # 1/σ(B) relative to σ at B_ref: the residuals' weights
        self.edges = {b: e for b, e in (edges or {}).items() if b in used}
        self.next_to_edge = set(next_to_edge)  # batch sizes whose edge lies right above the highest lr read
        self.stiffness = EDGE_STIFFNESS * float(np.std(self.y))

    def without(self, b) -> "_Model":
        """The same model less batch size b's runs, its knot, B_ref and weights kept (the jackknife's)."""
        keep = self.group != self.used.index(b)
        return _Model([u for u in self.used if u != b], self.pts[keep], self.b_ref, self.edges, self.next_to_edge,
                      self.form, self.knot, self.w[keep])

    def shifted(self, by) -> "_Model":
        """The same model with each used B's runs (and its stability edge) moved by by[i] decades in lr, its
        lr_opt with them; knot, B_ref and weights kept."""
        pts = self.pts.copy()
        pts[:, 1] += np.asarray(by)[self.group]
        edges = {b: e + by[self.used.index(b)] for b, e in self.edges.items()}
        return _Model(self.used, pts, self.b_ref, edges, self.next_to_edge, self.form, self.knot, self.w)

    def curve(self, p, l10, above):
        """log10 lr_opt at l10 = log10(B / B_ref) (above: log10(B / B_knot) where positive, else 0)."""
        if self.form == POWER_LAW:
            return p[M] + p[BETA] * l10 + p[GAMMA] * above
        half = (p[BETA] - l10 - math.log10(self.b_ref)) / 2  # ½·log10(B_noise / B)
        if self.form == MCCANDLISH:  # lr_max / (1 + B_noise/B)
            return p[M] - np.logaddexp(0.0, 2 * half * LN10) / LN10
        return p[M] - (np.logaddexp(half * LN10, -half * LN10) / LN10 - math.log10(2))  # surge: peak at B_noise

    def log_lr_opt(self, p, b) -> float:
        """log10 of the modelled lr_opt at batch size b."""
        return float(self.curve(p, math.log10(b / self.b_ref), max(math.log10(b / self.knot), 0.0)))

    def residuals(self, p) -> np.ndarray:
        """The weighted residuals of the runs, then each stability edge's excess (zero below the edge)."""
        excess = [max(self.log_lr_opt(p, b) - e, 0.0) * self.stiffness for b, e in self.edges.items()]
        return np.concatenate([self.linear(p)[0], excess])

    def linear(self, p):
        """For parameters p: the per-B (a_B, c_B) by least squares, and the weighted residuals (σ(B)
        is the same within a batch size, so the weights do not change a_B and c_B)."""
        return self.project(_shape(self.x - self.curve(p, self.l10, self.above), self.t, p[N_LINE:]))

    def project(self, g):
        """For each run's g(u): the per-B (a_B, c_B) by least squares and the weighted residuals."""
        resid = np.empty_like(self.y)
        floors = []
        for i in range(len(self.used)):
            sel = self.group == i
            design = np.column_stack([np.ones(sel.sum()), g[sel]])
            coef, *_ = np.linalg.lstsq(design, self.y[sel], rcond=None)
            resid[sel] = (self.y[sel] - design @ coef) * self.w[sel]
            floors.append(coef)
        return resid, floors

    def sigma_trend(self, p, allow=True) -> dict:
        """Whether the unweighted residuals' scatter trends with log B: the slope ω of ln r² on ln B
        (σ ∝ B^ω is half of it) and its t test, each B's residuals scaled up for the 2 dof its own
        a_B and c_B took (else a B with few runs looks quiet). Sets the weights when p ≤ TREND_P (1: always)."""
        n_b = np.bincount(self.group)[self.group]
        r = self.linear(p)[0] * np.sqrt(n_b / np.maximum(n_b - 2, 1))  # a_B, c_B take 2 dof of each B's residuals
        keep = np.abs(r) > 1e-12 * max(np.max(np.abs(r)), 1e-300)  # an exact zero has no logarithm
        lnb, ln_r2 = self.l10[keep] * math.log(10), np.log(r[keep] ** 2)
        if keep.sum() < 5 or np.ptp(lnb) == 0:
            return {"omega": 0.0, "omega_se": None, "p_value": None, "used": False}
        fit = stats.linregress(lnb, ln_r2)
        omega, p_value = float(fit.slope / 2), float(fit.pvalue)
        used = bool(p_value <= TREND_P and allow)  # allow: a dof to spare for ω
        if used:
            self.weigh(omega)
        return {"omega": omega, "omega_se": float(fit.stderr / 2), "p_value": p_value, "used": used}

    def weigh(self, omega):
        """Weights 1/σ(B) for σ ∝ B^ω (relative to σ at B_ref)."""
        self.w = (10 ** self.l10) ** -omega

    def fit(self, start, fixed):
        """Least squares over the parameters not in `fixed` ({position: value}); (p, RSS)."""
        start = np.array(start, float)
        start[list(fixed)] = list(fixed.values())
        free = [i for i in range(len(start)) if i not in fixed]
        lower = np.array([-np.inf] * N_LINE + [0.0] * N_SHAPE)[free]
        upper = np.array([np.inf] * N_LINE + [K_MAX] * N_SHAPE)[free]

        def resid(q):
            p = start.copy()
            p[free] = q
            return self.residuals(p)

        res = _least_squares(resid, np.clip(start[free], lower, upper), (lower, upper))
        p = start.copy()
        p[free] = res.x
        return p, float(np.sum(res.fun**2))


def _least_squares(resid, start, bounds):
    """scipy's bounded trust-region least squares; a flat direction (a wall at its bound, a vertex no run
    holds) makes its trust-region step divide by zero, which it recovers from: not a user's warning."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return optimize.least_squares(resid, start, bounds=bounds, method="trf", x_scale="jac")


START_BETAS = (0.0, 0.5, 1.0)  # the power law's other starts (see _best_fit)


def _starts(model) -> list:
    """Starts for the power law: β from a line through each used B's best lr, then each of START_BETAS more
    than 0.25 from it (a time saver, not a proof: a start 0.15 above the line's β can end in another minimum,
    the best one on a benchmark sweep where the line's start did not; the other two are tried), with m
    through those best lrs; no bend; a shape without asymmetry."""
    xs = [model.x[model.group == i][np.argmin(model.y[model.group == i])] for i in range(len(model.used))]
    l10 = np.log10(np.array(model.used) / model.b_ref)
    beta, m = np.polyfit(l10, xs, 1)
    others = [b for b in START_BETAS if abs(b - beta) > 0.25]  # saves a fit; such a start can end elsewhere
    lines = [(m, beta)] + [(float(np.mean(xs - b * l10)), b) for b in others]
    return [np.array([m, b, 0.0] + [0.0] * N_SHAPE) for m, b in lines]


def _best_fit(model):
    """The power law's least squares from every start of _starts, the lowest RSS kept. One start, the line
    through each B's best lr, is pulled by a flat batch size's best lr (noise, often the grid's lowest) and
    settled in a local minimum: β = −1.56 at 400× the RSS of β = 0.47 on a benchmark sweep (a flat B = 512,
    2 seeds), whose bowl test then read no bowl (p = 0.047 against 7e-63)."""
    return min((model.fit(start, {GAMMA: 0.0}) for start in _starts(model)), key=lambda fit: fit[1])


def _profile_ci(model, p_hat, rss_min, s2, f95, se):
    """The values of the parameter at BETA (β, or a bending form's log10 B_noise) where the profile RSS
    (γ = 0) crosses rss_min + s²·F(1, dof), searched outward from the estimate. Each value is refitted from
    the one solved nearest it (continuation) and, where that leaves it outside the CI, from the estimate's
    parameters too, the lower RSS kept: either start alone can settle in a poorer minimum, whose RSS would
    end the CI early (on the budget demo's fixed-steps sweep the estimate's start puts β = 1.217 at RSS
    0.111 against 0.011 continued, and continuation alone ends McCandlish's log10 B_noise CI at 1.519
    against 1.585 from the estimate), while a value inside the CI by one start is inside by the other's
    lower RSS too. Each value is solved once (the root finder evaluates its bracket's ends again)."""
    limit = rss_min + s2 * f95
    fixed = lambda b: {BETA: b, GAMMA: 0.0}  # noqa: E731
    solved = {}  # value: (parameters, RSS)

    def prof(b):
        b = float(b)
        if b not in solved:
            near = min(solved, key=lambda v: abs(v - b), default=None)
            fit = model.fit(p_hat if near is None else solved[near][0], fixed(b))
            if near is not None and fit[1] > limit:
                fit = min(fit, model.fit(p_hat, fixed(b)), key=lambda f: f[1])
            solved[b] = fit
        return solved[b][1] - limit

    if prof(p_hat[BETA]) >= 0:  # no scatter at all (a noiseless surface): the CI is the point
        return [float(p_hat[BETA])] * 2
    return [_crossing(prof, p_hat[BETA], max(se, 0.01), sign) for sign in (-1, 1)]


def _crossing(fn, start, step, sign):
    """Where fn (negative at start) turns positive, searched from start in steps doubling toward `sign`;
    None if it does not within 12 (an open CI end)."""
    inner = start
    for _ in range(12):
        outer = inner + sign * step
        if fn(outer) > 0:
            return float(optimize.brentq(fn, *sorted((inner, outer)), xtol=1e-4))
        inner, step = outer, step * 2
    return None


class _Free(NamedTuple):
    """The fit with every batch size's lr_opt free (each capped at its edge) and the shape shared."""

    rss: float | None  # None: too few runs left to measure their scatter (dof < MIN_PURE_DOF)
    dof: int
    log_lr_opt: np.ndarray | None  # each used B's own log10 lr_opt
    curved: np.ndarray | None  # whether each used B's c_B is positive there (a bowl, not a hump or a flat line)


def _free_vertices(model, p, dof) -> _Free:
    """The runs' scatter and the shape's misfit without the lr_opt curve's, started from p (the power
    law's fit, `dof` its dof)."""
    n = len(model.used)
    free_dof = dof - (n - 2)
    if free_dof < MIN_PURE_DOF:
        return _Free(None, free_dof, None, None)
    edges = np.array([model.edges.get(b, np.inf) for b in model.used])

    def resid(q):
        r = model.project(_shape(model.x - q[:n][model.group], model.t, q[n:]))[0]
        return np.concatenate([r, np.where(np.isfinite(edges), np.maximum(q[:n] - edges, 0.0), 0.0) * model.stiffness])

    start = np.r_[[model.log_lr_opt(p, b) for b in model.used], p[N_LINE:]]
    lower, upper = np.r_[[-np.inf] * n, [0.0] * N_SHAPE], np.r_[[np.inf] * n, [K_MAX] * N_SHAPE]
    res = _least_squares(resid, np.clip(start, lower, upper), (lower, upper))
    floors = model.project(_shape(model.x - res.x[:n][model.group], model.t, res.x[n:]))[1]
    return _Free(float(np.sum(res.fun**2)), free_dof, res.x[:n], np.array([c > 0 for _, c in floors]))


def _lack_of_fit(model, p, rss, n_curve, free) -> dict:
    """Whether each batch size's own lr_opt (`free`) departs from the curve at p (n_curve parameters, RSS
    rss) by more than the runs' scatter: an F test on n_B − n_curve dof against the free fit's. Where it
    does (p < LOF_P) and enough of the free lr_opt lie among the lrs read (`vertices`: an unbracketed one
    runs off with nothing to hold it), `used`: `s2` is their departures' mean square in log10 lr_opt on
    `vertex_dof` (a batch size with no bowl of its own, c_B ≤ 0, holds no vertex either), and the curve's CIs
    are widened to at least the t-CIs that scatter gives the least-squares line through those lr_opt (centred
    on its parameters: _vertex_t)."""
    dof = len(model.used) - n_curve
    if free.rss is None or dof < 1:
        return {"f": None, "p_value": None, "dof": dof, "used": False}
    excess = max(rss - free.rss, 0.0)
    if excess <= 1e-12 * max(rss, 1e-300):  # the curve fits as well as the free lr_opt (a noiseless surface too)
        f = 0.0
    else:
        f = excess / dof / (free.rss / free.dof) if free.rss > 0 else math.inf
    p_value = float(stats.f.sf(f, dof, free.dof))
    held = [i for i, b in enumerate(model.used) if free.curved[i] and _bracketed(model, b, free.log_lr_opt[i])]
    departures = free.log_lr_opt[held] - np.array([model.log_lr_opt(p, model.used[i]) for i in held])
    vertex_dof = len(held) - n_curve
    return {"f": float(f), "p_value": p_value, "dof": int(dof), "pure_dof": int(free.dof),
            "used": bool(p_value < LOF_P and vertex_dof >= 1), "vertices": [model.used[i] for i in held],
            "vertex_dof": int(vertex_dof), "s2": float(np.sum(departures**2) / vertex_dof) if vertex_dof >= 1 else None,
            "widened": False}


def _held(model, free, lof) -> np.ndarray:
    """The free log10 lr_opt of the batch sizes lack_of_fit reads (`vertices`)."""
    return free.log_lr_opt[[model.used.index(b) for b in lof["vertices"]]]


def _widen(ci, centre, half, lof) -> list:
    """The hull of a CI (None: an open end) and centre ± half; lof["widened"] says whether it changed."""
    lo, hi = ci
    out = [None if lo is None else min(lo, centre - half), None if hi is None else max(hi, centre + half)]
    lof["widened"] = lof["widened"] or out != list(ci)
    return out


def _line_design(model, bend, batch_sizes) -> np.ndarray:
    """A line's design over batch_sizes, in log10 lr_opt: 1, log10(B/B_ref)[, the bend's term]."""
    b = np.array(batch_sizes, float)
    cols = [np.ones(len(b)), np.log10(b / model.b_ref)] + ([np.maximum(np.log10(b / model.knot), 0.0)] if bend else [])
    return np.column_stack(cols)


class _VertexLine(NamedTuple):
    """The least-squares line (or broken line) through the held vertices' own log10 lr_opt (_vertex_t)."""

    design: np.ndarray  # over the held vertices: 1, log10(B / B_ref)[, the bend's term]
    v: np.ndarray  # their own log10 lr_opt
    coef: np.ndarray  # the line's least-squares coefficients through v
    cov: np.ndarray  # the coefficients' covariance s2·(XᵀX)⁻¹
    t95: float  # t at 97.5% on lack_of_fit's vertex_dof
    s2_line: float  # the vertices' mean square about that line (lack_of_fit's `s2_line`)


def _vertex_t(model, free, lof, bend, s2=None) -> _VertexLine:
    """The line through the held vertices' own lr_opt and the t-CI their scatter gives its coefficients: s2
    (unless given) their mean square about that line (lof's s2 is about the joint fit's curve: centred here,
    the gap between the two would be counted twice)."""
    design, v = _line_design(model, bend, lof["vertices"]), _held(model, free, lof)
    s2_line = float(np.sum(_off_line(design, v) ** 2) / lof["vertex_dof"])
    cov = (s2_line if s2 is None else s2) * np.linalg.pinv(design.T @ design)
    return _VertexLine(design, v, np.linalg.lstsq(design, v, rcond=None)[0], cov,
                       float(stats.t.ppf(0.975, lof["vertex_dof"])), s2_line)


class _Smooth(NamedTuple):
    """A quadratic in log10 B through each held B's own lr_opt: the smooth curve, with the broken line's
    three parameters, that the bend's slopes' scatter is read about where it is the closer of the two."""

    departure: np.ndarray  # per used B: the quadratic less its own least-squares broken line, log10 lr
    s2: float | None  # the held vertices' mean square about the quadratic, on lack_of_fit's vertex_dof


def _smooth(model, free, lof) -> _Smooth:
    """Where lr_opt(B) is a smooth curve, each B's own lr_opt departs from the broken line by a pattern the
    truth's own least-squares broken line shares: not error in the slopes, yet lack_of_fit's s2 and the
    jackknife would read it as error (the answer's CIs covered 0.99-1.00 at 5-10x the slopes' spread on
    McCandlish truths, bench/README.md "Bend answers: about a smooth curve"). Read about the quadratic,
    that pattern is gone; a B set apart from its neighbours is not (the quadratic follows it only in part).
    Only where there is a pattern to read (lack_of_fit used: the vertices depart from the broken line by more
    than the runs' scatter) and the quadratic is the closer fit to them (by RSS, both with 3 parameters):
    where lr_opt is itself a broken line, a quadratic would add a misfit of its own. Else zero departures and
    s2 None (lack_of_fit's is read)."""
    n = len(model.used)
    if not lof["used"]:  # used implies vertex_dof ≥ 1: 4+ vertices held
        return _Smooth(np.zeros(n), None)
    held = [model.used.index(b) for b in lof["vertices"]]
    v, design = free.log_lr_opt[held], _line_design(model, True, lof["vertices"])
    quad = np.polyval(np.polyfit(design[:, 1], v, 2), design[:, 1])
    rss_quad = float(np.sum((v - quad) ** 2))
    if rss_quad >= float(np.sum(_off_line(design, v) ** 2)):
        return _Smooth(np.zeros(n), None)
    departure = np.zeros(n)  # a B whose own lr_opt is not held stays put: the quadratic is not extrapolated
    departure[held] = _off_line(design, quad)
    return _Smooth(departure, rss_quad / (len(held) - 3))


def _vertex_profile_ci(model, p, free, lof, ends) -> list:
    """A bending form's CI on log10 B_noise (at BETA) widened to at least the profile of its fit to each B's
    own lr_opt: the values q where that fit's RSS (lr_max refitted) rises above its value at p by
    s2·F(1, dof) (`lof`), searched outward from p's."""
    v = _held(model, free, lof)
    l10 = np.log10(np.array(lof["vertices"], float) / model.b_ref)
    above = np.maximum(np.log10(np.array(lof["vertices"], float) / model.knot), 0.0)

    def rss(q):
        r = v - model.curve(np.r_[0.0, q, p[GAMMA:]], l10, above)
        return float(np.sum((r - r.mean()) ** 2))  # lr_max (m) refitted: the mean departure

    limit = rss(p[BETA]) + lof["s2"] * float(stats.f.ppf(0.95, 1, lof["vertex_dof"]))
    out = []
    for sign, end in zip((-1, 1), ends):
        found = _crossing(lambda q: rss(q) - limit, p[BETA], 0.1, sign)
        out.append(None if end is None or found is None else (min if sign < 0 else max)(end, found))
    lof["widened"] = out != list(ends)
    return out


def _bend_test(model, p_hat, rss_min, n_par, n_runs, free) -> dict:
    """The power law against lr_opt bending in log-log: an F test on one more parameter (a change of
    slope at the middle batch size), and the slopes of the two halves with Wald CIs (t, its dof; `wald_ci95`),
    where it bends their CIs given that it did (_selective_ci). Where
    each B's own lr_opt departs from the broken line by more than the runs' scatter, the bend must also
    stand out of those departures (the same F test on each B's own lr_opt, n_B − 3 dof: the larger p
    is the test's) and the slopes' CIs are at least the t-CIs they give, centred on the broken line through those
    lr_opt (the joint fit's line trades its upper half against the loss shape's drift: on surge 128 asymmetric
    with 2 seeds its upper slope sat 0.1-0.2 above the truth's while the vertices' own line did not, and the
    answer's CIs missed 0.09 of the sweeps, 0.01 centred there). Where it bends, the slopes' CIs
    are at least the jackknife's too (`jackknife`)."""
    p_bend, rss_bend = model.fit(p_hat, {})
    dof = n_runs - n_par - 1
    f = (rss_min - rss_bend) / (rss_bend / dof) if rss_bend > 0 else math.inf
    p_value = float(stats.f.sf(max(f, 0.0), 1, dof))
    cov = _covariance(model, p_bend, [], rss_bend / dof)
    t95 = float(stats.t.ppf(0.975, dof))
    lof = _lack_of_fit(model, p_bend, rss_bend, 3, free)
    smooth = _smooth(model, free, lof)
    lof["s2_smooth"] = smooth.s2
    if lof["used"]:
        line = _vertex_t(model, free, lof, True, smooth.s2)
        lof["s2_line"] = line.s2_line
        p_value = max(p_value, _vertex_bend_p(line.design, line.v))
    slopes = {"lower_range": [min(model.used), model.knot], "upper_range": [model.knot, max(model.used)]}
    for key, grad_gamma in (("lower", 0.0), ("upper", 1.0)):
        grad = np.zeros(len(p_bend))
        grad[BETA], grad[GAMMA] = 1.0, grad_gamma
        value, se = float(grad @ p_bend), math.sqrt(max(float(grad @ cov @ grad), 0.0))
        slopes[key] = value
        wald = [value - t95 * se, value + t95 * se]
        slopes.setdefault("wald_ci95", {})[key] = wald
        if p_value < BEND_P:  # the answer's CI is the one given that the bend was found
            slopes[key + "_ci95"] = _selective_ci(value, se, float(grad @ cov[:, GAMMA]), p_bend[GAMMA],
                                                  float(stats.t.isf(p_value / 2, dof)), dof, wald)
        else:
            slopes[key + "_ci95"] = list(wald)
        if lof["used"]:
            g3 = np.array([0.0, 1.0, grad_gamma])  # (m, β, γ) in the line's design
            slopes[key + "_ci95"] = _widen(slopes[key + "_ci95"], float(g3 @ line.coef),
                                           line.t95 * math.sqrt(float(g3 @ line.cov @ g3)), lof)
    slopes["jackknife"] = _jackknife(model, p_bend, slopes, smooth.departure) if p_value < BEND_P else None
    return {"p_value": p_value, "bends": p_value < BEND_P, "slopes": slopes, "lack_of_fit": lof}


def _selective_ci(value, se, cov_gamma, gamma, t_seen, dof, wald) -> list:
    """A slope's 95% CI given that the bend test fired. The slopes are read only where the test passed; on a
    power law that picks the sweeps whose γ̂, and through their correlation the slopes, fell far by chance (the
    Wald CIs of false bends covered 0.62-0.78). The slope's estimate is normal with its Wald SE; γ̂ is b times
    it plus a part independent of it, and given that part the test passing is the slope lying outside one
    interval. The CI inverts that truncated normal (the polyhedral lemma of Lee, Sun, Sun and Taylor 2016, for
    this one selection event), with the SE scaled by t95 / z95 (from the Wald t-CI `wald`, which it is where
    the truncation removes nothing). The test is read as |γ̂| passing its cut: the γ̂ at which the test's own
    statistic (t_seen, its p as a t on dof) would have sat at BEND_P, so the cut follows the F test on RSS,
    not γ̂'s Wald SE (which, the model being nonlinear in γ, can put a p = 0.002 bend right at the cut). Where lack of fit made the
    vertices' own bend test the deciding one (the larger p), its p is read on the joint fit's dof and γ̂: an
    approximation of the event that selected the sweep, and the vertex line's t-CI in the final hull is not
    adjusted for it. A bend barely past its cut can give a truncated-normal CI that excludes the estimate itself
    (valid given the test: the estimate is the one the selection pushed out): the CI is stretched to the
    estimate, so that no slope is printed outside its own CI (on false bends with ρ ∈ {−0.8, −0.5, 0.5, 0.9}:
    coverage 0.947-0.957 → 0.960-0.972, width +1%; the hull with the Wald CI gave 0.960-0.979 at +10%). An end
    the search cannot bracket within 4,000 SDs is open (None)."""
    if se <= 0 or not math.isfinite(t_seen) or abs(cov_gamma) <= 1e-9 * se * abs(gamma):
        return list(wald)
    sd, b = (wald[1] - wald[0]) / (2 * stats.norm.ppf(0.975)), cov_gamma / se**2
    cut = abs(gamma) * min(stats.t.isf(BEND_P / 2, dof) / t_seen, 1.0)
    ends = sorted(((-cut - (gamma - b * value)) / b, (cut - (gamma - b * value)) / b))  # the slopes it rejects
    side = math.copysign(1.0, b * gamma)  # γ̂ past ±cut: the estimate lies above the rejected interval, or below

    def far(theta):  # log P(an estimate at least as far out on its side | the test passed), true slope theta
        kept = np.logaddexp(stats.norm.logcdf((ends[0] - theta) / sd), stats.norm.logsf((ends[1] - theta) / sd))
        return stats.norm.logsf(side * (value - theta) / sd) - kept

    def end(level):  # side·(far − log level) rises with θ: the end is searched from the estimate toward its root
        toward = -math.copysign(1.0, side * (far(value) - math.log(level)))
        return _crossing(lambda theta: toward * side * (far(theta) - math.log(level)), value, sd, toward)

    lo, hi = [end(0.025), end(0.975)][:: int(side)]  # far's 2.5% end is the lower one where side > 0
    return [None if lo is None else min(lo, value), None if hi is None else max(hi, value)]


def _jackknife(model, p_bend, slopes, departure=None) -> dict | None:
    """Where lr_opt bends (the slopes are the answer): each half's slope refitted with one batch size left
    out at a time, and the slopes' CIs widened to at least the delete-one-B jackknife's t-CI (n_B − 1 dof,
    the jackknife's usual reference: its variance is already the conservative one, a high-leverage B's
    residual inflated by its leverage). It carries what sets one batch size's lr_opt apart from the others
    whatever the cause, a loss shape the family misses at one end included, which neither the runs' scatter
    nor lack_of_fit (its free lr_opt share the shape) sees: on SGD on a noisy quadratic with 2 seeds the
    largest B's vertex sat 0.02–0.03 decade above the others' and the CIs missed the truth's broken line in
    0.21 of the answers (bench/README.md, "Bend answers: the jackknife"). The refits run on the runs moved by
    −`departure` (_smooth's). None with under 5 batch sizes (a half left with no batch size beyond the knot).
    `ci95_model`: the CIs before (given the test, lack_of_fit)."""
    n = len(model.used)
    if n < 5:
        return None
    departure = np.zeros(n) if departure is None else departure
    moved = model.shifted(-departure)
    drops = np.array([[q[BETA], q[BETA] + q[GAMMA]] for q in (moved.without(b).fit(p_bend, {})[0] for b in model.used)])
    t95 = float(stats.t.ppf(0.975, n - 1))
    half = t95 * np.sqrt((n - 1) / n * np.sum((drops - drops.mean(axis=0)) ** 2, axis=0))
    out = {"lower_half_width": float(half[0]), "upper_half_width": float(half[1]), "dof": n - 1,
           "smooth_departure": {str(b): float(d) for b, d in zip(model.used, departure)},
           "ci95_model": {key: slopes[key + "_ci95"] for key in ("lower", "upper")}, "widened": False}
    for key, h in zip(("lower", "upper"), half):
        slopes[key + "_ci95"] = _widen(slopes[key + "_ci95"], slopes[key], float(h), out)
    return out


def _off_line(design, y) -> np.ndarray:
    """y less its least-squares fit on the design's columns."""
    return y - design @ np.linalg.lstsq(design, y, rcond=None)[0]


def _vertex_bend_p(design, v) -> float:
    """The bend's F test (1, n_B − 3 dof) on each B's own log10 lr_opt v: the line against the broken line."""
    rss = [float(np.sum(_off_line(d, v) ** 2)) for d in (design[:, :2], design)]
    dof = len(v) - 3
    f = (rss[0] - rss[1]) / (rss[1] / dof) if rss[1] > 0 else math.inf
    return float(stats.f.sf(max(f, 0.0), 1, dof))


def fit_surface(sweep, b_ref=None) -> dict:
    """The joint model's β (lr_opt ∝ B^β) with its profile CI and the bend test, or why it has none."""
    read = _points(sweep)
    used, pts = read.used, read.pts
    n_par = 2 + N_SHAPE + 2 * len(used)  # m, β, the shape, a_B and c_B
    dof = len(pts) - n_par
    if len(used) < MIN_BATCHES or dof < 3:
        return {"beta": None, "reason": f"{len(used)} batch sizes with {MIN_POINTS_PER_B}+ lrs within "
                f"{WINDOW_DECADES:g} decade of their best, {len(pts)} runs for {n_par} parameters"}
    b_ref = b_ref or float(np.exp(np.mean(np.log(used))))
    model = _Model(used, pts, b_ref, read.edges, read.next_to_edge)
    p_hat, rss_min = _best_fit(model)
    bowl_p = _bowl_p(model, p_hat, n_par, dof, within_run_sigma(sweep) or 0.0)
    if bowl_p > BOWL_P:
        return {"beta": None, "bowl_p": bowl_p, "reason": f"no bowl along its lr_opt curve: a flat line at each batch "
                f"size fits the {len(pts)} runs read about as well as its bowls do (one-sided F test, p = {bowl_p:.2g})"}
    trend = model.sigma_trend(p_hat, allow=dof > 3)
    if trend["used"]:  # refit with each batch size weighted by its σ(B); ω costs a dof
        p_hat, rss_min = model.fit(p_hat, {GAMMA: 0.0})
        n_par, dof = n_par + 1, dof - 1
    s2 = rss_min / dof
    f95 = float(stats.f.ppf(0.95, 1, dof))
    lo, hi = _profile_ci(model, p_hat, rss_min, s2, f95, _wald_se(model, p_hat, s2))
    if trend["used"]:
        lo, hi = _omega_widen(model, p_hat, trend, [lo, hi], math.sqrt(f95))
    free = _free_vertices(model, p_hat, dof)
    lof = _lack_of_fit(model, p_hat, rss_min, 2, free)
    if lof["used"]:  # each B's own lr_opt scatters about the line: β's CI is at least that scatter's t-CI
        line = _vertex_t(model, free, lof, False)
        lof["s2_line"] = line.s2_line
        lo, hi = _widen([lo, hi], float(line.coef[1]), line.t95 * math.sqrt(line.cov[1, 1]), lof)
    log_lr_opt = {b: float(model.log_lr_opt(p_hat, b)) for b in used}
    _, floors = model.linear(p_hat)
    inside = [b for b, (_, c) in zip(used, floors) if c > 0 and _bracketed(model, b, log_lr_opt[b])]
    if len(inside) < MIN_INSIDE:
        return {"beta": None, "reason": f"its lr_opt lies among the lrs it read (within a decade of each B's best) "
                f"at {len(inside)} of {len(used)} batch sizes, in a bowl there (β would extrapolate the loss "
                "shape past the grid)"}
    if not all(abs(v) < MAX_DECADES for v in log_lr_opt.values()):
        return {"beta": None, "reason": f"its lr_opt runs past 1e±{MAX_DECADES:.0f} at some batch size (β = "
                f"{p_hat[BETA]:.3g} through {len(inside)} optima among the lrs read: no answer)"}
    lr_opt = {b: 10**v for b, v in log_lr_opt.items()}
    k = p_hat[N_LINE:]
    bend = _bend_test(model, p_hat, rss_min, n_par, len(pts), free)
    at_edge = [b for b, e in model.edges.items() if log_lr_opt[b] > e - HELD_DECADES]
    open_edge = _open_edge(model, log_lr_opt, at_edge, float(p_hat[BETA]), [lo, hi])
    return {"beta": float(p_hat[BETA]), "ci95": [lo, hi], "dof": int(dof), "sigma": math.sqrt(rss_min / dof),
            "sigma_trend": trend, "lack_of_fit": lof,
            "n_runs": int(len(pts)), "diverged_left_out": read.diverged,
            "survivors_left_out": read.past_edge,
            "stability_edge": {str(b): float(10**e) for b, e in model.edges.items()},
            "lr_opt_at_edge": at_edge, "open_edge": open_edge, "batch_sizes": used,
            "skipped_flat": [],  # fit.json's key kept (a public contract): flat batch sizes are read since 2026-12-06
            "b_ref": b_ref,
            "lr_opt": {str(b): v for b, v in lr_opt.items()}, "inside_grid": inside,
            "shape": {"k_above": [float(k[0]), float(k[1])], "k_below": [float(k[2]), float(k[3])],
                      "at_batch_size": [min(used), max(used)]},
            "curvature": {str(b): float(c[1]) for b, c in zip(used, floors)},
            "bend": bend, "forms": fit_forms(model, p_hat, rss_min, dof, f95, free, with_ci=bend["bends"]),
            "bowl_p": bowl_p}


def _bowl_p(model, p, n_par, dof, floor) -> float:
    """Whether the runs read hold a bowl at all: the model at p (unweighted) against a flat line at each batch
    size (a_B alone), an F test on the other n_par − n_B parameters, one-sided: a batch size whose c_B is not
    positive (a hump, or nothing) counts as its flat line, so humps are no evidence of a bowl. Its σ² is at
    least floor² (the runs' within-run noise, as the per-B optima's σ with one seed: a smooth bowl far under it
    is not read as one). A batch size with no curvature of its own is read, its c_B near 0 or below it placing
    little and its runs holding σ: this is the model's own test that the losses hold a bowl, where the per-B
    flat flag was that test batch size by batch size."""
    resid, floors = model.linear(p)
    flat = bowl = 0.0
    for i, (_, c) in enumerate(floors):
        sel = model.group == i
        flat_b = float(np.sum((model.y[sel] - model.y[sel].mean()) ** 2))
        flat, bowl = flat + flat_b, bowl + (float(np.sum(resid[sel] ** 2)) if c > 0 else flat_b)
    if flat - bowl <= 0:
        return 1.0
    df1 = n_par - len(model.used)
    s2 = max(bowl / dof, floor**2)
    return float(stats.f.sf((flat - bowl) / df1 / s2, df1, dof)) if s2 > 0 else 0.0


def _omega_widen(model, p_hat, trend, ci, t95) -> list:
    """β's CI widened for ω's uncertainty: the profile holds the weights at the estimated ω, but β̂ moves
    with them. β refitted with the weights at ω ± its SE gives that move (`beta_move`, half the difference: a
    delta-method term in the manner of Kackar and Harville's for estimated variance parameters, with this
    sweep's own sensitivity of β to ω in place of its expectation); t times it is added in quadrature to each
    side of the CI."""
    omega, se = trend["omega"], trend["omega_se"]
    betas = []
    try:
        for w in (omega - se, omega + se):
            model.weigh(w)
            betas.append(model.fit(p_hat, {GAMMA: 0.0})[0][BETA])
    finally:
        model.weigh(omega)
    trend["beta_move"] = float(abs(betas[1] - betas[0]) / 2)
    move, beta = t95 * trend["beta_move"], float(p_hat[BETA])
    lo, hi = ci
    return [None if lo is None else beta - math.hypot(beta - lo, move),
            None if hi is None else beta + math.hypot(hi - beta, move)]


def _open_edge(model, log_lr_opt, at_edge, beta, ci) -> dict | None:
    """Where the fitted lr_opt lies above the highest lr read and under the lowest where a run diverged, with
    no finite run between (the bowl's bottom unseen), the data do not say whether training breaks before
    the bottom: each such lr_opt may lie anywhere from the fit down to the highest lr read there. β is the
    least-squares slope on log10 B of the optima, linear in them, so it ranges over `shift_range`: the sum of
    the moves (c_b, each open B's lr_opt brought down to its highest lr read) that lower β, to the sum of
    those that raise it (open batch sizes on both sides of the middle move β opposite ways: moving all of
    them at once could cancel). `shift` is the larger of the two, with `beta` and `ci95`; `ci95_reach` spans
    every CI over the range. A line through the optima, not a refit: a refit forced under such a cap bends
    the bowls and tilts the line to fit both (+0.14 for one open B mid-range in a one-off check on the unit
    test's sweep, against +0.04 this way). None where no batch size is open."""
    tops = {b: float(model.x[model.group == model.used.index(b)].max()) for b in model.next_to_edge}
    open_b = sorted(b for b, top in tops.items() if b not in at_edge and log_lr_opt[b] > top + HELD_DECADES)
    if not open_b:
        return None
    x = np.log10(np.array(model.used, float))
    moves = np.array([tops[b] - log_lr_opt[b] if b in open_b else 0.0 for b in model.used])
    dx = np.where(np.isclose(x, x.mean(), rtol=0.0, atol=1e-12), 0.0, x - x.mean())  # the middle B: exactly 0
    c = dx * moves / np.sum(dx**2)
    down, up = float(np.sum(np.minimum(c, 0.0))), float(np.sum(np.maximum(c, 0.0)))
    shift = down if -down >= up else up
    return {"batch_sizes": open_b, "highest_lr_read": {str(b): float(10 ** tops[b]) for b in open_b},
            "beta": beta + shift, "shift": shift, "shift_range": [down, up],
            "ci95": slide(ci, shift, shift), "ci95_reach": slide(ci, down, up)}


def slide(ci, low_by, high_by) -> list:
    """A CI with its low end moved by low_by and its high end by high_by (an end of None, open, stays open)."""
    lo, hi = ci
    return [None if lo is None else lo + low_by, None if hi is None else hi + high_by]


def fit_forms(model, p_pl, rss_pl, dof, f95, free, with_ci=True) -> dict:
    """McCandlish's lr_max/(1 + B_noise/B) and the surge form (lr_opt peaks at B_noise) fitted to every
    run, compared by RSS with the power law (each has 2 parameters: no dof correction). `preferred`: the
    bending form with the lower RSS, "undecided" within FORM_MARGIN·s² of the other, "none" when the
    better one does not beat the power law by FORM_MARGIN·s² or places no B_noise (lr_opt bends, but
    not like either form). A B_noise more than B_NOISE_REACH decades beyond the batch sizes run is not
    placed (None): there the form is a power law over them. Each form's B_noise gets its profile CI
    (F(1, dof) at 95%, or the form's lack of fit against the free-vertex fit `free` where it holds:
    _lack_of_fit; an end past B_NOISE_REACH is open, None) when `with_ci` or a bending form is
    preferred; else `b_noise_ci95` and `lack_of_fit` are None (the profiles are most of the joint fit's time)."""
    out = {POWER_LAW: {"rss": rss_pl}}
    reach = (math.log10(min(model.used)) - B_NOISE_REACH, math.log10(max(model.used)) + B_NOISE_REACH)
    fits = {}
    try:
        for form in BENDING:
            model.form = form
            fits[form] = min((model.fit(_form_start(model, p_pl, q), {GAMMA: 0.0}) for q in
                              np.log10([min(model.used), model.b_ref, max(model.used)])), key=lambda fit: fit[1])
            p, rss = fits[form]
            placed = reach[0] < p[BETA] < reach[1]  # else: a power law over the B run, B_noise not placed (None)
            out[form] = {"rss": rss, "b_noise": float(10 ** p[BETA]) if placed else None,
                          "b_noise_ci95": None, "lack_of_fit": None}
        best, other = sorted(BENDING, key=lambda f: out[f]["rss"])
        s2_best = out[best]["rss"] / dof
        beats_pl = rss_pl - out[best]["rss"] >= FORM_MARGIN * s2_best and out[best]["b_noise"] is not None
        out["preferred"] = (NO_FORM if not beats_pl else UNDECIDED
                            if out[other]["rss"] - out[best]["rss"] < FORM_MARGIN * s2_best else best)
        if with_ci or out["preferred"] != NO_FORM:
            for form in BENDING:
                model.form = form
                out[form].update(_form_ci(model, *fits[form], dof, f95, free, reach))
    finally:
        model.form = POWER_LAW
    return out


def _form_ci(model, p, rss, dof, f95, free, reach) -> dict:
    """A bending form's profile CI on B_noise (model.form set) and its lack of fit (fit_forms)."""
    s2 = rss / dof
    ends = _profile_ci(model, p, rss, s2, f95, _wald_se(model, p, s2))
    lof = _lack_of_fit(model, p, rss, 2, free)
    if lof["used"]:  # each B's own lr_opt scatters about the form: the CI is at least that scatter's
        ends = _vertex_profile_ci(model, p, free, lof, ends)
    return {"lack_of_fit": lof,
            "b_noise_ci95": [None if e is None or not reach[0] < e < reach[1] else float(10**e) for e in ends]}


def _form_start(model, p_pl, q) -> np.ndarray:
    """A bending form's start: log10 B_noise = q, lr_opt at B_ref the power law's, its shape."""
    p = p_pl.copy()
    p[M], p[BETA], p[GAMMA] = 0.0, q, 0.0
    p[M] = p_pl[M] - model.curve(p, 0.0, 0.0)
    return p


def _bracketed(model, b, log_lr) -> bool:
    """Whether log10 lr lies between the lowest lr of the runs the model read at batch size b and the highest
    (or its stability edge, when no finite run lies between the two: the optimum is below the edge)."""
    x = model.x[model.group == model.used.index(b)]
    top = max(x.max(), model.edges[b]) if b in model.next_to_edge else x.max()
    return bool(x.min() - 1e-9 <= log_lr <= top + 1e-9)


def _covariance(model, p, fixed, s2) -> np.ndarray:
    """The parameters' covariance s²·(JᵀJ)⁻¹ from a finite-difference Jacobian of the residuals at p;
    rows and columns of the `fixed` positions are zero."""
    free = [i for i in range(len(p)) if i not in fixed]
    base = model.linear(p)[0]
    cols = []
    for i in free:
        q = p.copy()
        q[i] += 1e-5
        cols.append((model.linear(q)[0] - base) / 1e-5)
    jac = np.array(cols).T
    cov = np.zeros((len(p), len(p)))
    cov[np.ix_(free, free)] = np.linalg.pinv(jac.T @ jac) * s2
    return cov


def _wald_se(model, p, s2) -> float:
    """The Wald SE of the parameter at BETA, γ = 0 (it only sizes the profile search's first step)."""
    return math.sqrt(max(_covariance(model, p, [GAMMA], s2)[BETA, BETA], 0.0)) or 0.05
