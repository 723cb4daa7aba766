"""Gradient-noise estimators (lrscale.noise) against closed forms (issue 13's validation).

Linear regression y = x·w* + ε, x ~ N(0, I_d), ε of a known law with variance s², loss ½(x·w − y)².
At w = w* + Δ the per-sample gradient is (x·Δ − ε)x, so G = Δ, Σ = (|Δ|² + s²)I + ΔΔᵀ:
  tr(Σ) = d(|Δ|² + s²) + |Δ|²,  |G|² = |Δ|²,  B_simple = tr(Σ)/|G|²;
and at Δ = 0 each coordinate of the noise at batch size B has excess kurtosis (3κ − 3)/B, κ = E ε⁴/s⁴
(Gaussian 3, Laplace 6, Student-t df 5: 9). Per cell: `--reps` replicates of m mini-batches of size
B; the coverage of each 95% CI and the mean estimate. Tail index: Hill on n samples of Student-t(3)
(truth 3), Laplace and Gaussian (no power tail: how often `tail` says power or light), also on the
standardized gradient noise of the regression. Then real teacher_student runs (`--ts-seeds`) with
Gaussian vs Laplace label noise: the last probe's kurtosis at B = 8, 64, 256.
  python bench/noise_estimators.py [--reps 300] [--m 16] [--out bench/out/noise_estimators.json]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lrscale.noise import noise_kurtosis, noise_scale, standardized_noise, tail_index  # noqa: E402

D, S2 = 32, 0.25
KAPPA = {"gaussian": 3.0, "laplace": 6.0, "student_t5": 9.0}


def label_noise(law, size, rng):
    s = np.sqrt(S2)
    if law == "gaussian":
        return rng.normal(0, s, size)
    if law == "laplace":
        return rng.laplace(0, s / np.sqrt(2), size)
    if law == "student_t3":
        return rng.standard_t(3, size) * s / np.sqrt(3)
    return rng.standard_t(5, size) * s * np.sqrt(3 / 5)


def minibatch_grads(delta, law, b, m, rng):
    x = rng.normal(size=(m, b, D))
    resid = x @ delta - label_noise(law, (m, b), rng)
    return np.einsum("mb,mbd->md", resid, x) / b


def scale_cell(law, b, m, reps, rng):
    """Coverage of tr(Σ), |G|² and B_simple CIs at |Δ|² = 1 (B_simple = 41)."""
    delta = np.full(D, 1 / np.sqrt(D))
    truth = {"trace_sigma": D * (1 + S2) + 1, "g2": 1.0}
    truth["b_simple"] = truth["trace_sigma"] / truth["g2"]
    hits, est = {k: [] for k in truth}, {k: [] for k in truth}
    q = stats.t.ppf(0.975, m - 1)
    for _ in range(reps):
        r = noise_scale(minibatch_grads(delta, law, b, m, rng), b)
        hits["trace_sigma"].append(r["trace_sigma_ci95"][0] <= truth["trace_sigma"] <= r["trace_sigma_ci95"][1])
        hits["g2"].append(abs(r["g2"] - truth["g2"]) <= q * r["g2_se"])  # g2 can be < 0: its CI is ± q·SE
        for k in ("trace_sigma", "g2"):
            est[k].append(r[k])
        lo, hi = r["b_simple_ci95"]
        hits["b_simple"].append((lo is None or lo <= truth["b_simple"]) and (hi is None or truth["b_simple"] <= hi))
        est["b_simple"].append(np.nan if r["b_simple"] is None else r["b_simple"])
    return [{"what": k, "law": law, "batch_size": b, "m": m, "truth": truth[k],
             "median_estimate": float(np.nanmedian(est[k])), "coverage": float(np.mean(hits[k]))} for k in truth]


def kurtosis_cell(law, b, m, reps, rng):
    """Coverage of the noise kurtosis CI at Δ = 0, truth (3κ − 3)/B."""
    truth = (3 * KAPPA[law] - 3) / b
    hits, est = [], []
    for _ in range(reps):
        r = noise_kurtosis(minibatch_grads(np.zeros(D), law, b, m, rng), b)
        hits.append(r["kurtosis_ci95"][0] <= truth <= r["kurtosis_ci95"][1])
        est.append(r["kurtosis"])
    return {"what": "kurtosis", "law": law, "batch_size": b, "m": m, "truth": truth,
            "median_estimate": float(np.median(est)), "coverage": float(np.mean(hits))}


def tail_summary(rows, law, n, truth):
    out = {"what": "tail_index", "law": law, "n": n, "truth": truth,
           "median_estimate": float(np.median([r["tail_index"] for r in rows])),
           "tail_power": float(np.mean([r["tail"] == "power" for r in rows])),
           "tail_light": float(np.mean([r["tail"] == "light" for r in rows]))}
    if truth is not None:
        out["coverage"] = float(np.mean([r["tail_index_ci95"][0] <= truth <= r["tail_index_ci95"][1] for r in rows]))
    return out


def tail_cell(law, n, reps, rng):
    """Hill + Vuong on n samples of a known law: Student-t(3) (α = 3), Laplace, Gaussian (no power tail)."""
    draw = {"student_t3": lambda: rng.standard_t(3, n), "laplace": lambda: rng.laplace(0, 1, n),
            "gaussian": lambda: rng.normal(0, 1, n)}[law]
    return tail_summary([tail_index(draw()) for _ in range(reps)], law, n, 3.0 if law == "student_t3" else None)


def gradient_tail_cell(law, b, m, reps, rng):
    """The same on the standardized gradient noise of linear regression at Δ = 0 (label noise of a known
    law: a Student-t(3) label gives noise with tail index 3 at every B; Gaussian and Laplace none)."""
    rows = [tail_index(standardized_noise(minibatch_grads(np.zeros(D), law, b, m, rng))) for _ in range(reps)]
    return {**tail_summary(rows, law, None, 3.0 if law == "student_t3" else None), "what": "gradient tail_index",
            "batch_size": b, "m": m}


def teacher_student_runs(seeds, steps=600):
    """Real runs: teacher_student with Gaussian vs Laplace label noise; the last probe's kurtosis by B."""
    import tempfile

    from lrscale import config
    from lrscale.train import train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for law in ("gaussian", "laplace"):
            for b in (8, 64, 256):
                ks = []
                for seed in range(seeds):
                    cfg = config.validate({"task": {"name": "teacher_student", "noise": law},
                                           "budget": {"unit": "steps", "value": steps}, "train": {"eval_points": 10}})
                    m = train(cfg, b, 0.003, seed, Path(tmp) / f"{law}{b}_{seed}.json", device="cpu", threads=1)
                    ks.append(m["noise"]["probes"][-1]["kurtosis"])
                rows.append({"what": "teacher_student kurtosis", "law": law, "batch_size": b, "truth": None,
                             "median_estimate": float(np.median(ks)), "seeds": seeds,
                             "spread": [float(min(ks)), float(max(ks))]})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--m", type=int, default=16, help="mini-batches per probe")
    ap.add_argument("--out", default="bench/out/noise_estimators.json")
    ap.add_argument("--ts-seeds", type=int, default=3, help="seeds per teacher_student run (0 = skip)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for law in KAPPA:
        for b in (8, 64):
            rows += scale_cell(law, b, args.m, args.reps, rng)
            rows.append(kurtosis_cell(law, b, args.m, args.reps, rng))
    for law in ("student_t3", "laplace", "gaussian"):
        rows.append(tail_cell(law, args.m * D * 8, args.reps, rng))
    for law in ("student_t3", "laplace", "gaussian"):
        for b in (8, 64):
            rows.append(gradient_tail_cell(law, b, args.m, args.reps, rng))
    if args.ts_seeds:
        rows += teacher_student_runs(args.ts_seeds)
    fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    lines = ["| estimate | law | B (or n) | truth | median estimate (teacher_student: min-max over seeds) | "
             "CI coverage | tail: power | tail: light |",
             "|" + "---|" * 8]
    lines += [f"| {r['what']} | {r['law']} | {r.get('batch_size', r.get('n'))} | {fmt(r['truth'])} | "
              f"{fmt(r['median_estimate'])}{' (' + ', '.join(map(fmt, r['spread'])) + ')' if 'spread' in r else ''} | "
              f"{fmt(r.get('coverage'))} | {fmt(r.get('tail_power'))} | "
              f"{fmt(r.get('tail_light'))} |" for r in rows]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "m": args.m, "d": D, "rows": rows}, indent=1))
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
