"""Gradient-noise statistics from m mini-batch gradients of one batch size B.

Input: an (m, P) array, each row the mean gradient of an independent mini-batch of B samples at
the same parameters. Writing Σ for the per-sample gradient covariance and G for the mean gradient:
  noise_scale     tr(Σ), |G|² and B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, appendix A, with
                  the two batch sizes B and mB): the sample variance of the rows is unbiased for
                  tr(Σ)/B, and |mean|² − that/m is unbiased for |G|².
  noise_kurtosis  the excess kurtosis of the noise at batch size B, per coordinate: Σ k4 / Σ σ⁴
                  over coordinates (unbiased fourth cumulants and squared variances from the m
                  rows), so each coordinate is measured on its own scale. For i.i.d. samples it
                  falls as 1/B; B × it estimates the per-sample excess kurtosis.
  tail_index      Hill's estimator of a power-law tail index at k = √n, and Vuong's test of a
                  power law against an exponential tail on the same exceedances: light tails
                  (Gaussian, Laplace) come out `light` or `undecided`, not as a misleading α.
                  On gradients: of `standardized_noise` (leave-one-out z-scores, pooled).
`gradient_noise` summarises the runs' last probes per batch size for the fit (fit.json), pooling
the seeds' probes (`pooled`).
Every estimate comes with a jackknife SE over the m rows (delete-one) and a t-based 95% CI; the CIs
of the positive, right-skewed ones (tr(Σ), B_simple, kurtosis + 2) are built on their log, which
covers better at small B under heavy tails (bench/noise_estimators.py; numbers in bench/README.md).
"""

import math

import numpy as np
from scipy import stats

from .metrics import last_probe


def _t95(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof))


def _jackknife_se(leave_one_out: np.ndarray) -> float:
    m = len(leave_one_out)
    return float(math.sqrt((m - 1) / m * np.sum((leave_one_out - leave_one_out.mean()) ** 2)))


def _log_ci(value: float, leave_one_out: np.ndarray, q: float, shift: float = 0.0):
    """t-CI for value on the scale log(value + shift), from its leave-one-out values. When some of
    them are not above −shift (one row dominating, an estimate that crossed its bound) it falls back
    to the plain scale, both ends kept at or above the bound −shift."""
    if value + shift > 0 and np.all(leave_one_out + shift > 0):
        se = _jackknife_se(np.log(leave_one_out + shift))
        return [float((value + shift) * np.exp(-q * se) - shift), float((value + shift) * np.exp(q * se) - shift)]
    se = _jackknife_se(leave_one_out)
    return [max(value - q * se, -shift), max(value + q * se, -shift)]


def _moments(grads: np.ndarray):
    """(s, |mean|²) on all rows and on every leave-one-out subset; s = Σ|row − mean|²/(n − 1)."""
    m = len(grads)
    total, sq = grads.sum(axis=0), np.einsum("ij,ij->i", grads, grads)
    mean2 = float(total @ total) / m**2
    s = (float(sq.sum()) - m * mean2) / (m - 1)
    n = m - 1
    mean2_loo = (float(total @ total) - 2 * grads @ total + sq) / n**2
    s_loo = (float(sq.sum()) - sq - n * mean2_loo) / (n - 1)
    return s, mean2, s_loo, mean2_loo


def noise_scale(grads, batch_size: int) -> dict:
    """tr(Σ), |G|², B_simple with jackknife SEs; B_simple's CI is built on its log (a ratio), and is
    open above (None) when |G|² is not distinguishable from 0 at 95%."""
    grads = np.asarray(grads, dtype=np.float64)
    m = len(grads)
    if m < 3:
        raise ValueError(f"noise_scale: {m} mini-batches; expected at least 3")
    s, mean2, s_loo, mean2_loo = _moments(grads)
    trace, g2 = batch_size * s, mean2 - s / m
    trace_loo, g2_loo = batch_size * s_loo, mean2_loo - s_loo / (m - 1)
    q = _t95(m - 1)
    se_g2 = _jackknife_se(g2_loo)
    out = {"m": m, "batch_size": batch_size, "trace_sigma": trace, "trace_sigma_se": _jackknife_se(trace_loo),
           "trace_sigma_ci95": _log_ci(trace, trace_loo, q), "g2": g2, "g2_se": se_g2,
           "b_simple": trace / g2 if g2 > 0 else None}
    if g2 - q * se_g2 > 0 and np.all(g2_loo > 0):  # |G|² clearly above 0: a CI on log B_simple
        out["b_simple_ci95"] = _log_ci(out["b_simple"], trace_loo / g2_loo, q)
    else:  # |G|² may be 0: B_simple has a lower bound only
        out["b_simple_ci95"] = [trace / (g2 + q * se_g2) if g2 + q * se_g2 > 0 else None, None]
    return out


def _cumulants(n, q1, q2, q3, q4):
    """Per column: the unbiased fourth cumulant k4 (Fisher's k-statistic) and an unbiased estimate of
    σ⁴ = κ2² (from E k2² = κ2² + κ4/n + 2κ2²/(n − 1)), from the power sums q_k of n samples (taken
    about any point near their mean, so they stay well conditioned)."""
    mean = q1 / n  # products, not **: numpy's pow is ~10x slower and a probe runs this on 10^5 columns
    s2 = q2 - mean * q1
    s4 = q4 - mean * (4 * q3 - mean * (6 * q2 - 3 * mean * q1))
    k2 = s2 / (n - 1)
    k4 = n * ((n + 1) * s4 - 3 * (n - 1) * s2 * s2 / n) / ((n - 1) * (n - 2) * (n - 3))
    return k4, (k2 * k2 - k4 / n) * (n - 1) / (n + 1)


def _pooled_kurtosis(x: np.ndarray):
    """Σ k4 / Σ σ⁴ over columns, on all rows and on every delete-one subset: O(m·P), not O(m²·P)."""
    m = x.shape[0]
    c = x - x.mean(axis=0)
    c2 = c * c
    powers = [c, c2, c2 * c, c2 * c2]
    sums = [p.sum(axis=0) for p in powers]
    k4, sigma4 = _cumulants(m, *sums)
    k4_loo, sigma4_loo = _cumulants(m - 1, *(s[None, :] - p for s, p in zip(sums, powers)))
    return float(k4.sum() / sigma4.sum()), k4_loo.sum(axis=1) / sigma4_loo.sum(axis=1)


KURTOSIS_FLOOR = -2.0  # excess kurtosis of any law is ≥ −2 (kurtosis ≥ 1): the CI lives on log(k + 2)


def noise_kurtosis(grads, batch_size: int) -> dict:
    """Excess kurtosis of the noise at batch size B: Σ_j k4_j / Σ_j σ⁴_j over the coordinates with
    spread, i.e. their kurtoses averaged with weights σ⁴_j. A ratio of sums of unbiased estimates:
    the mean of per-coordinate sample kurtoses is biased low by half at m = 16 (bench). Its CI is
    built on log(k + 2): the estimate's law is skewed right under heavy tails (a rare large row),
    so a symmetric CI misses low (bench: Laplace labels at B = 8, 0.81 → 0.87; still < 0.90 there,
    as the jackknife over m rows cannot see rows rarer than 1/m)."""
    grads = np.asarray(grads, dtype=np.float64)
    m = len(grads)
    if m < 5:
        raise ValueError(f"noise_kurtosis: {m} mini-batches; expected at least 5")
    keep = np.var(grads, axis=0) > 0
    if not keep.any():
        return {"m": m, "coordinates": 0, "kurtosis": None, "kurtosis_se": None, "kurtosis_ci95": None,
                "per_sample": None}
    k, loo = _pooled_kurtosis(grads[:, keep])
    return {"m": m, "coordinates": int(keep.sum()), "kurtosis": k, "kurtosis_se": _jackknife_se(loo),
            "kurtosis_ci95": _log_ci(k, loo, _t95(m - 1), shift=-KURTOSIS_FLOOR), "per_sample": batch_size * k}


def _exceedances(x: np.ndarray, k: int):
    """The k largest values (descending) and the (k+1)-th, the threshold: np.partition, O(n)."""
    n = len(x)
    largest = np.sort(np.partition(x, n - k - 1)[n - k - 1:])[::-1]
    return largest[:k], largest[k]


def tail_index(samples) -> dict:
    """Hill's tail index from the k = √n largest |samples| with SE α/√k (a small k keeps Hill's bias
    inside its CI), and which tail the k' = n^0.6 largest favour (Vuong's test, power law against
    exponential above the same threshold, |z| > 1.96; the larger k' gives it power): `tail` is power,
    light (an exponential fits clearly better: Gaussian, Laplace) or undecided. α alone would give a
    light tail a finite, misleading number."""
    x = np.abs(np.asarray(samples, dtype=np.float64).ravel())
    x = x[np.isfinite(x) & (x > 0)]
    n = len(x)
    if n < 100:
        return {"n": n, "k": None, "tail_index": None, "tail_index_ci95": None, "tail_z": None, "tail": None}
    k = int(math.sqrt(n))
    top, u = _exceedances(x, k)
    alpha = 1.0 / np.mean(np.log(top / u))
    top, u = _exceedances(x, int(n**0.6))
    a_test, rate = 1.0 / np.mean(np.log(top / u)), 1.0 / np.mean(top - u)
    lr = (np.log(a_test) + a_test * np.log(u) - (a_test + 1) * np.log(top)) - (np.log(rate) - rate * (top - u))
    z = float(lr.sum() / (lr.std(ddof=1) * math.sqrt(len(top)))) if lr.std(ddof=1) > 0 else 0.0
    se = alpha / math.sqrt(k)
    return {"n": n, "k": k, "tail_index": float(alpha), "tail_index_ci95": [float(alpha - 1.96 * se), float(alpha + 1.96 * se)],
            "tail_z": z, "tail": "power" if z > 1.96 else "light" if z < -1.96 else "undecided"}


def standardized_noise(grads) -> np.ndarray:
    """Each row's deviation from the mean of the others, over their SD, per coordinate: comparable
    across coordinates of any scale, and not capped as a z-score on its own row's SD would be. With
    m rows Gaussian noise comes out as Student-t with m − 2 dof: a tail index near m − 2 or above
    says no tail heavier than that can be seen with m mini-batches."""
    grads = np.asarray(grads, dtype=np.float64)
    m = len(grads)
    total, sq = grads.sum(axis=0), (grads**2).sum(axis=0)
    mean_loo = (total - grads) / (m - 1)
    var_loo = (sq - grads**2 - (m - 1) * mean_loo**2) / (m - 2)
    keep = np.all(var_loo > 0, axis=0)
    return ((grads - mean_loo)[:, keep] / np.sqrt(var_loo[:, keep])).ravel()


def pooled(probes, key: str, shift: float = 0.0):
    """The seeds' estimates of one quantity pooled: exp of the mean of their log(value + shift), with
    a t-CI from the larger of two SEs of that mean: the seeds' own jackknife SEs (read back from their
    log-scale CIs; t with the seeds' dof summed) and the scatter between the seeds (the runs differ,
    so may the quantity; t with n − 1 dof). One seed: its own value and CI. When a CI is open or not on the log scale,
    the seeds' median and the envelope of their CIs. Returns (value, ci95)."""
    got = [p for p in probes if p.get(key) is not None]
    if len(got) < 2:
        return (got[0][key], got[0][key + "_ci95"]) if got else (None, None)
    cis = [p[key + "_ci95"] for p in got]
    if any(not ci or None in ci or min(ci) + shift <= 0 for ci in cis) or any(p[key] + shift <= 0 for p in got):
        bounded = [ci for ci in cis if ci]
        return float(np.median([p[key] for p in got])), None if not bounded else [
            None if any(c[0] is None for c in bounded) else min(c[0] for c in bounded),
            None if any(c[1] is None for c in bounded) else max(c[1] for c in bounded)]
    logs = np.log([p[key] + shift for p in got])
    within = [math.log((ci[1] + shift) / (ci[0] + shift)) / (2 * _t95(p["m"] - 1)) for p, ci in zip(got, cis)]
    n = len(got)
    se_within, se_between = math.sqrt(sum(w**2 for w in within)) / n, float(np.std(logs, ddof=1)) / math.sqrt(n)
    se = max(se_within, se_between)
    q = _t95(sum(p["m"] - 1 for p in got) if se_within >= se_between else n - 1)  # each SE with its own dof
    centre = float(logs.mean())
    return math.exp(centre) - shift, [math.exp(centre - q * se) - shift, math.exp(centre + q * se) - shift]


def gradient_noise(result, runs) -> dict:
    """Per batch size, the last noise probe of the runs at the swept lr nearest lr_opt: B_simple and
    the noise kurtosis, the seeds' probes pooled (`pooled`: the CI narrows as seeds are added)."""
    rows, latest = [], [(m, last_probe(m)) for m in runs]
    for r in result["per_batch"]:
        at_b = [(m, p) for m, p in latest if m["batch_size"] == r["batch_size"] and p]
        if r["lr_opt"] is None or not at_b:
            continue
        lr = min({m["lr"] for m, _ in at_b}, key=lambda v: abs(math.log(v / r["lr_opt"])))
        probes = [p for m, p in at_b if m["lr"] == lr]
        row = {"batch_size": r["batch_size"], "lr": lr, "seeds": len(probes), "step": probes[0]["step"]}
        for key, shift in (("b_simple", 0.0), ("kurtosis", -KURTOSIS_FLOOR)):
            row[key], row[key + "_ci95"] = pooled(probes, key, shift)
        row["tail"] = sorted({p["tail"] for p in probes if p["tail"]})
        rows.append(row)
    values = [r["b_simple"] for r in rows if r["b_simple"] is not None]
    return {"per_batch": rows, "b_simple_median": float(np.median(values)) if values else None,
            "where": "the last probe of each run at the swept lr nearest lr_opt, seeds pooled"}
