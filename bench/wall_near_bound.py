"""The joint β's CI where a wall's steepness is 0, a little above 0, and well above it: can a CI be right
(0.90-0.98, the truth ruled out in ≤ 5%) on both sides of the bound?

Truth: power law β = 0.5 on fit_accuracy's grid (7 B = 8..512, 7 lrs half a decade apart, random phase,
σ = 0.01, runs past 1.25 decades above the optimum diverge), loss 1 + B^−½ + c·d² + a·c·d³₊ (c = 0.2, d =
log10 lr − log10 lr_opt): a = 0 is fit_accuracy's symmetric curve, a = 2 its asymmetric one, and the model's
k₊ is a at every B; k₋ is 0 throughout. Each sweep's joint CI (`surface.fit_surface`, with its σ(B) and
lack-of-fit widenings) each way, on the same draws:
  free    lrscale as it is: every k± free to leave its bound along β's profile
  held    the k± that the estimate holds on the bound held there along the profile (tried 2026-12-07,
          bench/README "Wall steepness on its bound: the profile")
  plugin  F(1, dof) scaled by the chi-bar-squared quantile of the model linearised at the estimate, its k±
          on the bound taken as 0 (`chi_bar_scale.scale`; tried 2026-12-07)
  oracle  the same with the k± that the truth holds at 0 taken as 0 (k₋, and k₊ where a = 0): what a
          threshold could do if an analysis knew which walls are 0
  selected  the plug-in's threshold with every k± within κ SEs of 0 taken as 0, κ = √(ln n), n runs read
          (generalized moment selection, Andrews and Soares 2010; tried 2026-12-07 later, not in the
          default --ways): an analysis's guess at which walls are 0 that a wall a little above 0 also passes
Per (a, seeds, way): the share of sweeps whose CI holds the true β, the median half-width and the errors'
SD in CI units (z = error / (half-width / 1.96)).

β's profile is swapped for the whole fit, so the bending forms' B_noise profiles run the same way (their
CIs are not read here; the plugin and oracle ways spend time on their scales).

    python bench/wall_near_bound.py [--sweeps 200] [--walls 0 0.1 0.3 1 2] [--seeds 1 2] [--workers 2]
                                    [--ways free held plugin oracle] [--out bench/out/wall_near_bound.json]
"""

import argparse
import json
import statistics
import sys
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from chi_bar_scale import BOUND, profile_as, scale  # noqa: E402
from fit_accuracy import synthetic, truth  # noqa: E402

from lrscale.analysis import surface  # noqa: E402

BETA, SIGMA = 0.5, 0.01
WAYS = ("free", "held", "plugin", "oracle")  # the default --ways; "selected" is the fifth
SHAPE = range(surface.N_LINE, surface.N_LINE + surface.N_SHAPE)
K_BELOW = [surface.N_LINE + 2, surface.N_LINE + 3]  # k₋ at the smallest and the largest B


def sweeps(wall, seeds, n):
    """The cell's n sweeps, reproducible from (wall, seeds)."""
    rng = np.random.default_rng(zlib.crc32(repr(("wall_near_bound", wall, seeds)).encode()))
    lr_opt = truth("power_law", BETA)
    for _ in range(n):
        yield synthetic(lr_opt, "sym", SIGMA, seeds, rng, wall=wall)


def profile_for(way, wall, profile, taken=None):
    """surface._profile_ci (the original: `profile`) as `way` computes β's CI; a scaled way appends to `taken`
    how many k± it took as 0."""

    def held(model, p_hat, *args):
        on = {i: 0.0 for i in SHAPE if p_hat[i] <= BOUND}
        fit = model.fit
        model.fit = lambda start, fixed: fit(start, {**fixed, **on})
        try:
            return profile(model, p_hat, *args)
        finally:
            del model.fit

    def scaled(model, p_hat, rss_min, s2, f95, se):
        if way == "selected":
            kappa, cov = np.sqrt(np.log(len(model.y))), surface._covariance(model, p_hat, [surface.GAMMA], s2)
            on = [i for i in SHAPE if p_hat[i] <= kappa * np.sqrt(max(cov[i, i], 0.0))]
        else:
            on = [i for i in SHAPE if p_hat[i] <= BOUND] if way == "plugin" else list(SHAPE) if wall == 0 else K_BELOW
        if taken is not None:
            taken.append(len(on))
        return profile(model, p_hat, rss_min, s2, f95 * scale(model, p_hat, on), se)

    return {"free": profile, "held": held}.get(way, scaled)


def run(job) -> dict:
    """One (wall, seeds, way) cell over its sweeps."""
    wall, seeds, way, n = job
    errors, halves, covered, taken = [], [], 0, []
    with profile_as(lambda profile: profile_for(way, wall, profile, taken)):
        for sweep in sweeps(wall, seeds, n):
            fit = surface.fit_surface(sweep)
            if fit["beta"] is None or None in fit["ci95"]:
                continue
            lo, hi = fit["ci95"]
            covered += lo <= BETA <= hi
            errors.append(fit["beta"] - BETA)
            halves.append((hi - lo) / 2)
    z = [e / (h / 1.96) for e, h in zip(errors, halves) if h > 0]
    return {"wall": wall, "seeds": seeds, "way": way, "sweeps": n, "closed_ci": len(errors),
            "coverage": covered / len(errors) if errors else None,
            "median_half_width": float(np.median(halves)) if halves else None,
            "z_sd": statistics.stdev(z) if len(z) > 1 else None,
            "k_taken_as_0": float(np.mean(taken)) if taken else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--walls", type=float, nargs="*", default=[0.0, 0.1, 0.3, 1.0, 2.0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ways", nargs="*", default=list(WAYS), choices=WAYS + ("selected",))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "wall_near_bound.json"))
    args = ap.parse_args()
    jobs = [(w, s, way, args.sweeps) for s in args.seeds for w in args.walls for way in args.ways]
    start = time.time()
    with Pool(args.workers) as pool:
        rows = pool.map(run, jobs, chunksize=1)
    fmt = lambda v, spec=".3f": "—" if v is None else format(v, spec)  # noqa: E731
    print("| a (k₊) | seeds | way | closed CIs | coverage | median half-width | z SD | k± taken as 0 (mean of 4) |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['wall']:g} | {r['seeds']} | {r['way']} | {r['closed_ci']} | {fmt(r['coverage'])} | "
              f"{fmt(r['median_half_width'])} | {fmt(r['z_sd'], '.2f')} | {fmt(r['k_taken_as_0'], '.2f')} |")
    wall_s = time.time() - start
    print(f"{len(jobs)} cells, {args.sweeps} sweeps each, {wall_s:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"sweeps": args.sweeps, "wall_s": wall_s, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
