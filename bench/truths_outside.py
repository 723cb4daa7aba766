"""Truths outside the fit's own family (issue 23.6): loss surfaces the estimator was not built
around, for bench/fit_accuracy.py's `--world outside` cells.

Every truth has 7 batch sizes 8..512 and returns a Sweep plus the β it counts as true: the
generating β for power-law truths, and for truths whose lr_opt(B) is not a power law the
pseudo-true β, the least-squares slope of the true log lr_opt on log B over the 7 batch sizes.
  rising_wall      β = 0.5; the wall above the optimum steepens with B: 0.2d² + a_j·0.2·d₊³,
                   a_j = 4j/6 at B = 8·2^j; NaN for d > 1.25 (issue 23's review)
  narrowing_basin  β = 0.5; the basin narrows with B: z = d/w_B, w_B = (B/8)^−0.12,
                   0.2z² + 0.4z₊³; NaN for z > 1.25
  nqm_sgd          SGD on a noisy quadratic model (curvatures 1/i, i = 1..100, 1000 steps at constant
                   lr, gradient-noise variance h_i·1000/B); the loss is the expected loss at step 1000
                   times lognormal noise (σ 0.005); NaN past 10x the initial loss. lr_opt(B) is computed
                   (not a power law: the local slope falls with B); pseudo-true β ≈ 0.67
  messy            β = 0.5, the asymmetric in-family curve, with real sweeps' defects: σ growing 4x
                   toward the wall, a per-(seed, B) offset at every lr (σ 0.01), divergence near the
                   wall at random, 10% of runs absent, and the Phase-2 1-3-10 grid (no random phase)
  plateau_kink     (designed here) lr_opt(B) a broken power law, slope 0.8 up to B = 24 and 0.35
                   beyond (none of the fit's forms; the kink between grid batch sizes and away from
                   the middle B, where the joint model's bend test puts its knot), and a loss that saturates below the optimum:
                   A_B(1 − exp(−0.2d²/A_B)) with A_B = 0.3·(B/8)^−0.25 (under-training plateaus that
                   flatten with B), 0.2d² + 0.4d₊³ above; NaN for d > 1.25
  cliff_edge       (designed here, after the stability-edge cap) β = 0.5 for the bowl's vertex, 0.2d²,
                   and every run diverges past an edge that closes in with B: d > 0.5 − 0.1j at
                   B = 8·2^j, so at B = 512 the edge cuts 0.1 decade below the vertex and the best
                   trainable lr is the edge (true lr_opt = the vertex or the edge, the lower):
                   pseudo-true β ≈ 0.46; a bowl that ends in a cliff before its wall has risen
  cliff_deep       (designed after cliff_edge's run) the same with an edge that closes in 0.25 decade
                   per doubling of B: from B = 64 on the best trainable lr is the edge, a decade below
                   the vertex at B = 512 (pseudo-true β ≈ −0.09: the best lr falls past B = 64)
  ragged_edge      (designed here, to test partly diverged lrs) β = 0.5, the asymmetric in-family curve;
                   each run has its own instability z ~ N(0, 1) that adds 0.04·z·d₊ to its loss and
                   makes it diverge where d > 0.6 − 0.15z: at an lr where some seeds diverged the
                   survivors are the calmer runs, with lower losses than the lr's runs as a whole
                   (selected, not missing at random as in messy); true lr_opt = the vertex
  near_edge        (designed after the open-edge rule, to price it) β = 0.5, the in-family bowl 0.2d², and
                   every run diverges where d > 0.3: the bottom always trains, 0.3 decade under the edge,
                   but on a half-decade grid it often lies unseen between the highest lr that trained and
                   the lowest that diverged; true lr_opt = the vertex
"""

import numpy as np

from lrscale.analysis.sweep_table import Sweep

BATCH = np.array([8, 16, 32, 64, 128, 256, 512])
WALL = 1.25  # decades above the optimum where a run diverges
SIGMA = 0.01


def geo_centre(lr_opt):
    """lr_opt scaled so its geometric mean over BATCH is 1e-3 (the grid's centre)."""
    return lr_opt * 1e-3 / np.exp(np.mean(np.log(lr_opt)))


def random_phase_grid(rng, centre_log10=-3.0):
    """7 lrs half a decade apart around centre_log10, one random phase for every B."""
    return 10 ** (centre_log10 - 1.5 + 0.5 * np.arange(7) + rng.uniform(-0.25, 0.25))


def make_sweep(lrs, losses, ran=None):
    bs = [int(b) for b in BATCH]
    sweep = Sweep(bs, {b: lrs for b in bs}, {b: losses[b] for b in bs}, {b: None for b in bs}, "synthetic",
                  list(range(next(iter(losses.values())).shape[0])))
    if ran is not None:
        sweep.ran = ran
    return sweep


def slope(lr_opt) -> float:
    """Least-squares slope of log lr_opt on log B: the pseudo-true β of a truth that bends."""
    return float(np.polyfit(np.log(BATCH), np.log(lr_opt), 1)[0])


def _power_law(beta):
    return geo_centre(BATCH.astype(float) ** beta)


def rising_wall(rng, seeds):
    lr_opt, lrs = _power_law(0.5), random_phase_grid(rng)
    losses = {}
    for j, (b, opt) in enumerate(zip(BATCH, lr_opt)):
        d = np.log10(lrs / opt)
        clean = 1 + b**-0.5 + 0.2 * d**2 + (4 * j / 6) * 0.2 * np.maximum(d, 0) ** 3
        table = clean + rng.normal(0, SIGMA, (seeds, 7))
        table[:, d > WALL] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses), lr_opt


def narrowing_basin(rng, seeds):
    lr_opt, lrs = _power_law(0.5), random_phase_grid(rng)
    losses = {}
    for b, opt in zip(BATCH, lr_opt):
        z = np.log10(lrs / opt) / (b / 8) ** -0.12
        table = 1 + b**-0.5 + 0.2 * z**2 + 0.4 * np.maximum(z, 0) ** 3 + rng.normal(0, SIGMA, (seeds, 7))
        table[:, z > WALL] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses), lr_opt


NQM_H = 1.0 / np.arange(1, 101)  # curvatures
NQM_STEPS, NQM_NOISE = 1000, 1000.0  # steps at constant lr; gradient-noise variance h_i·NQM_NOISE/B


def nqm_loss(lr, b, steps=NQM_STEPS):
    """Expected NQM loss after `steps` of SGD at lr (x_i(0)² = 1); inf past stability."""
    r = (1 - lr * NQM_H) ** 2
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        rt = r**steps
        geometric = np.where(np.isclose(r, 1), steps, (1 - rt) / (1 - r))
        ex2 = rt + lr**2 * NQM_H * (NQM_NOISE / b) * geometric
    return 1 + 0.5 * float(np.sum(NQM_H * ex2)) if np.all(r < 1) else np.inf


def _nqm_optima():
    """lr_opt(B) of the NQM: a fine log grid, then a golden-section polish."""
    from scipy.optimize import minimize_scalar

    out = []
    for b in BATCH:
        grid = np.linspace(-4, np.log10(1.99), 400)
        best = grid[np.argmin([nqm_loss(10**x, b) for x in grid])]
        res = minimize_scalar(lambda x: nqm_loss(10**x, b), bounds=(best - 0.02, best + 0.02), method="bounded",
                              options={"xatol": 1e-7})
        out.append(10**res.x)
    return np.array(out)


NQM_OPT = _nqm_optima()
NQM_INITIAL = 0.5 * float(np.sum(NQM_H))


def nqm_sgd(rng, seeds):
    centre = float(np.mean(np.log10(NQM_OPT)))
    lrs = random_phase_grid(rng, centre)
    losses = {}
    for b in BATCH:
        clean = np.array([nqm_loss(lr, b) for lr in lrs])
        table = clean * np.exp(rng.normal(0, 0.005, (seeds, 7)))
        table[:, ~(clean - 1 <= 10 * NQM_INITIAL)] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses), NQM_OPT


PHASE2_GRID = np.array([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1])


MESSY_DEFECTS = ("diverge", "absent", "growing_sd", "offset")


def messy(rng, seeds, without=(), lrs=PHASE2_GRID):
    """`without`: defects of MESSY_DEFECTS left out (another name is ignored), `lrs` another grid
    (bench/messy_bias.py); each variant draws the same random numbers (a defect left out draws them and does
    not use them), so sweeps pair."""
    lr_opt = _power_law(0.5)
    losses, ran = {}, {}
    for b, opt in zip(BATCH, lr_opt):
        d = np.log10(lrs / opt)
        clean = 1 + b**-0.5 + 0.2 * d**2 + 0.4 * np.maximum(d, 0) ** 3
        sd = SIGMA * (1 + (0 if "growing_sd" in without else 3) * np.clip(d / WALL, 0, 1))  # 4x at the wall
        offset = rng.normal(0, SIGMA, (seeds, 1)) * ("offset" not in without)  # one per (seed, B), at every lr
        table = clean + offset + rng.normal(0, 1, (seeds, len(lrs))) * sd
        p_diverge = np.clip((d - 0.5) / (WALL - 0.5), 0, 1)  # none below half a decade, all past the wall
        if "diverge" in without:
            p_diverge = (d > WALL).astype(float)  # past the wall only, as every other truth
        table[rng.uniform(size=(seeds, len(lrs))) < p_diverge] = np.nan
        present = rng.uniform(size=(seeds, len(lrs))) >= (0.0 if "absent" in without else 0.10)
        table[~present] = np.nan
        losses[int(b)], ran[int(b)] = table, present
    return make_sweep(lrs, losses, ran), lr_opt


KINK_B = 24


def _broken_power_law():
    log_b = np.log2(BATCH / KINK_B)
    return geo_centre(2 ** np.where(log_b < 0, 0.8 * log_b, 0.35 * log_b))


def plateau_kink(rng, seeds):
    lr_opt, lrs = _broken_power_law(), random_phase_grid(rng)
    losses = {}
    for b, opt in zip(BATCH, lr_opt):
        d = np.log10(lrs / opt)
        height = 0.3 * (b / 8) ** -0.25
        below = height * (1 - np.exp(-0.2 * d**2 / height))
        clean = 1 + b**-0.5 + np.where(d < 0, below, 0.2 * d**2 + 0.4 * d**3)
        table = clean + rng.normal(0, SIGMA, (seeds, 7))
        table[:, d > WALL] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses), lr_opt


def cliff_edge(rng, seeds, closing=0.1, start=0.5):
    vertex, lrs = _power_law(0.5), random_phase_grid(rng)
    edge = start - closing * np.arange(len(BATCH))  # decades above the vertex where every run diverges
    losses = {}
    for b, opt, e in zip(BATCH, vertex, edge):
        d = np.log10(lrs / opt)
        table = 1 + b**-0.5 + 0.2 * d**2 + rng.normal(0, SIGMA, (seeds, 7))
        table[:, d > e] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses), vertex * 10 ** np.minimum(edge, 0.0)


def cliff_deep(rng, seeds):
    return cliff_edge(rng, seeds, closing=0.25)


RAGGED = 0.6  # decades above the vertex where half the runs have diverged


def ragged_edge(rng, seeds):
    lr_opt, lrs = _power_law(0.5), random_phase_grid(rng)
    losses = {}
    for b, opt in zip(BATCH, lr_opt):
        d = np.log10(lrs / opt)
        z = rng.normal(0, 1, (seeds, 7))  # each run's own instability
        table = 1 + b**-0.5 + 0.2 * d**2 + 0.4 * np.maximum(d, 0) ** 3 + 0.04 * z * np.maximum(d, 0)
        table += rng.normal(0, SIGMA, (seeds, 7))
        table[d > RAGGED - 0.15 * z] = np.nan
        losses[int(b)] = table
    return make_sweep(lrs, losses), lr_opt


NEAR_EDGE = 0.3  # decades above the vertex where every run of near_edge diverges


def near_edge(rng, seeds):
    return cliff_edge(rng, seeds, closing=0.0, start=NEAR_EDGE)


TRUTHS = {"rising_wall": rising_wall, "narrowing_basin": narrowing_basin, "nqm_sgd": nqm_sgd, "messy": messy,
          "plateau_kink": plateau_kink, "cliff_edge": cliff_edge, "cliff_deep": cliff_deep,
          "ragged_edge": ragged_edge, "near_edge": near_edge}
