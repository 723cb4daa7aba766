"""Where each batch size's optimum lies: one typed result per B (`Optimum`) and the locator that
places it, `LocalFit`: each B's own local fit (optima.locate: quadratic, argmin or spline), the
quadratic vertex's shape bias carried as an SE floor. These per-B optima are the two-stage cross-check
of the joint model of the loss surface (lrscale.analysis.surface), which replaced the shared-shape
locator of issue 10 (issue 23: a pass/fail gate on one shape for every B, accepted on curves that
differed in shape).

A locator locates every B's optimum (`located`; `locate_all` adds the SEs, CIs and flags), redraws them
for the bootstrap (`draw_log10`), says which share of an optimum's variance more seeds can shrink
(`noise_share`) and how it located (`describe`); the fit and the bootstrap ask the optimum's own locator.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from . import optima
from .names import CLIPPED, EDGE, GRAD_CLIPPED, GRID_POINT_EDGE, GRID_POINT_FLAT, QUADRATIC
from .sweep_table import Sweep


@dataclass
class Optimum:
    """One batch size in fit.json's `per_batch` (`row()` writes it; fields in its key order)."""

    batch_size: int
    lrs: list  # the lrs run at this B, ascending
    mean_loss: list  # seed-mean final loss per lr (None: every run there diverged)
    n_seeds: int
    runs_per_lr: list
    diverged_lrs: list
    lr_opt: float | None = None
    loss_at_opt: float | None = None
    lr_opt_ci95: list | None = None  # [low, high], t with the SE's dof
    lr_opt_se_log10: float | None = None  # noise and the whole shape bias, in quadrature (decades)
    lr_opt_se_across_b_log10: float | None = None  # noise and the B-to-B part of the shape bias: for fits across B
    flags: dict = field(default_factory=dict)  # flag -> reason (optima.FLAGS)
    grid_best_lr: float | None = None
    parabola: list | None = None  # the local quadratic in log10 lr, highest power first
    curvature_t: float | None = None
    lr_opt_vertex: float | None = None  # fit.json keys of the shared shape (deleted in issue 23): always null
    local_fit: list | None = None
    noise_sigma: float | None = None  # σ of one run's final loss at this B (alias loss_sigma)
    noise_sigma_dof: float | None = None
    included: bool = False
    method: str | None = None  # how lr_opt was placed (Locator.method)
    se_noise_log10: float | None = field(default=None, repr=False)  # the noise part of the SE
    dof: float | None = field(default=None, repr=False)  # of that SE
    locator: object = field(default=None, repr=False, compare=False)  # the Locator that placed it

    INTERNAL = ("se_noise_log10", "dof", "locator")

    def row(self) -> dict:
        """fit.json's row: every public field, plus the loss_sigma aliases of the noise_sigma keys."""
        out = {k: v for k, v in self.__dict__.items() if k not in self.INTERNAL}
        return {**out, "loss_sigma": self.noise_sigma, "loss_sigma_dof": self.noise_sigma_dof}


def point_sd(sweep: Sweep, b, noise: dict):
    """SD of each seed-mean loss of batch size b (its σ over the runs behind it); None without σ."""
    sigma = noise_at(noise, b)["sigma"]
    return None if sigma is None else sigma / np.sqrt(np.maximum(sweep.counts(b), 1))


def noise_at(noise: dict, b) -> dict:
    """The noise of batch size b: its own σ and dof when σ is modelled per B, else the pooled ones."""
    model = noise["model"]
    return {**noise, "sigma": model["sigma"].get(b, noise["sigma"]), "dof": model["dof"].get(b, noise["dof"])}


class LocalFit:
    """Each B's own local fit; the quadratic vertices' shape bias over the identifiable B (`shape`:
    fit.json's shape_bias_log10) is an SE floor: its whole size for a CI, its B-to-B part for fits across B."""

    def __init__(self, sweep: Sweep, noise: dict, estimator: str):
        self.sweep, self.noise, self.estimator = sweep, noise, estimator
        self.located = {b: self._locate(b) for b in sweep.batch_sizes}  # b -> (Optimum, locate's dict, means)
        step = float(np.median([optima.spacing(sweep.grid.get(b, sweep.lrs[b])) for b in sweep.batch_sizes]))
        ident = [loc for _, loc, _ in self.located.values() if identifiable(loc)]
        total, across = optima.shape_floor([loc["shape_bias"] for loc in ident], step)
        # shift, shift_se, phase_jitter: fit.json keys from before issue 23 (public contract), no longer estimated
        self.shape = {"total": total, "across_b": across, "shift": None, "shift_se": None, "phase_jitter": None,
                      "model": "floor"}

    def _locate(self, b):
        sweep = self.sweep
        lrs, n = sweep.lrs[b], sweep.counts(b)
        mean = optima.seed_mean(sweep.losses[b], sweep.ran_mask(b))
        opt = Optimum(b, lrs.tolist(), [None if not np.isfinite(v) else float(v) for v in mean], int(n.max()),
                      n.tolist(), [float(lr) for lr, v in zip(lrs, mean) if not np.isfinite(v)])
        if np.isfinite(mean).sum() < 3:
            return opt, None, mean
        loc = optima.locate(lrs, mean, self.estimator, point_sd(sweep, b, self.noise), n, sweep.grid.get(b))
        opt.lr_opt, opt.loss_at_opt, opt.grid_best_lr = loc["lr_opt"], loc["loss_opt"], float(lrs[loc["i_best"]])
        opt.parabola, opt.curvature_t = loc["parabola"], loc["curvature_t"]
        return opt, loc, mean

    def draw_log10(self, b, rng, scale: float) -> float:
        """The optimum located again on seed means redrawn with the noise (its SD times scale), plus the B-to-B
        shape bias."""
        sweep, mean = self.sweep, self.located[b][2]
        mean = mean + rng.normal(0, 1, len(mean)) * scale * point_sd(sweep, b, self.noise)
        lr_opt = optima.locate(sweep.lrs[b], mean, self.estimator, runs=sweep.counts(b),
                               grid_lrs=sweep.grid.get(b))["lr_opt"]
        return math.log10(lr_opt) + rng.normal(0, self.shape["across_b"])

    def noise_share(self, opt: Optimum) -> float:
        return 1 - self.shape["across_b"] ** 2 / opt.lr_opt_se_across_b_log10**2

    def describe(self, why: str) -> str:
        shape = self.shape
        if self.estimator != "parabola":
            return (f"Located by the {self.estimator} estimator per B{why}; shape bias SE floor "
                    f"{shape['total']:.3f} decades.")
        return f"Located by a quadratic per B{why}; the shape bias is an SE floor of {shape['total']:.3f} decades."


def identifiable(loc) -> bool:
    """A located vertex inside its bracket, curved beyond the noise: a flat column has no shape."""
    curved = (loc or {}).get("curvature_t") or 0
    return bool(loc and loc["shape_bias"] and not loc["clipped"] and curved >= optima.MIN_CURVATURE_T)


def locate_all(sweep: Sweep, noise: dict, estimator: str, include_edge: bool):
    """Every B's Optimum with SE, CI, flags and whether it enters the fits across B; and the locator."""
    local = LocalFit(sweep, noise, estimator)
    for opt, loc, mean in local.located.values():
        _finish(opt, local, loc, mean, sweep, noise, include_edge)
    return [opt for opt, _, _ in local.located.values()], local


def _finish(opt: Optimum, locator: LocalFit, loc, mean, sweep, noise, include_edge) -> None:
    """How the optimum was placed, its SEs (noise and shape bias in quadrature: the whole bias for the CI,
    its B-to-B part for fits across B; an unseen side's quantisation for the CI alone), the flags with
    reasons, and whether the optimum is used."""
    b = opt.batch_size
    own, se = noise_at(noise, b), None
    if opt.lr_opt is not None:
        edge = loc["x_vertex"] is None and optima.unbracketed(np.isfinite(mean), loc["i_best"]) is not None
        opt.method = ({"parabola": QUADRATIC}.get(locator.estimator, locator.estimator) if loc["x_vertex"] is not None
                      else GRID_POINT_EDGE if edge else GRID_POINT_FLAT)
        opt.locator, opt.dof = locator, own["dof"]
        # the delta method's SE, or one grid step for an unbracketed optimum (it lies beyond the edge)
        opt.se_noise_log10 = loc["se_log10"] if loc["se_log10"] is not None else (
            loc["step"] if noise["sigma"] is not None else None)
        if opt.se_noise_log10 is not None:
            unseen, shape = optima.unseen_floor(loc), locator.shape
            se = optima.total_se(opt.se_noise_log10, shape["total"])
            opt.lr_opt_se_log10 = optima.total_se(se, unseen)
            opt.lr_opt_se_across_b_log10 = optima.total_se(opt.se_noise_log10, shape["across_b"])
            opt.lr_opt_ci95 = optima.ci95(opt.lr_opt, se, opt.dof, unseen)
    # flat is judged on what the data pin (noise and shape floor), not on an unseen side's quantisation
    opt.flags = optima.flags_for(sweep.lrs[b], mean, loc, se, own, sweep.clipped.get(b))
    opt.noise_sigma, opt.noise_sigma_dof = own["sigma"], own["dof"]
    blocking = set(opt.flags) - {GRAD_CLIPPED} - ({EDGE, CLIPPED} if include_edge else set())
    opt.included = bool(opt.lr_opt is not None and opt.lr_opt_se_log10 is not None and not blocking)
