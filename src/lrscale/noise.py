"""Gradient-noise statistics from m mini-batch gradients of one batch size B (issue 13).

Input: an (m, P) array, each row the mean gradient of an independent mini-batch of B samples at
the same parameters. Writing Σ for the per-sample gradient covariance and G for the mean gradient:
  noise_scale     tr(Σ), |G|² and B_simple = tr(Σ)/|G|² (McCandlish et al. 2018, appendix A, with
                  the two batch sizes B and mB): the sample variance of the rows is unbiased for
                  tr(Σ)/B, and |mean|² − that/m is unbiased for |G|².
  noise_kurtosis  the excess kurtosis of the noise at batch size B, per coordinate (Fisher's
                  unbiased G2 over the m rows), averaged over coordinates: a coordinate's scale
                  cancels, so parameter scales do not mix into it. For i.i.d. samples it falls as
                  1/B; B × it estimates the per-sample excess kurtosis.
  tail_index      Hill's estimator of a power-law tail index on samples, at k = √n, with a
                  stability check over k: light tails (Gaussian, Laplace) have no power tail and
                  get `power_tail: false` instead of a misleading number.
Every estimate comes with a jackknife SE over the m rows (delete-one) and a t-based 95% CI.
"""

import math

import numpy as np
from scipy import stats


def _t95(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof))


def _jackknife_se(leave_one_out: np.ndarray) -> float:
    m = len(leave_one_out)
    return float(math.sqrt((m - 1) / m * np.sum((leave_one_out - leave_one_out.mean()) ** 2)))


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
           "g2": g2, "g2_se": se_g2, "b_simple": trace / g2 if g2 > 0 else None}
    if g2 - q * se_g2 > 0 and np.all(g2_loo > 0):  # |G|² clearly above 0: a CI on log B_simple
        se = _jackknife_se(np.log(trace_loo / g2_loo))
        out["b_simple_ci95"] = [out["b_simple"] * math.exp(-q * se), out["b_simple"] * math.exp(q * se)]
    else:  # |G|² may be 0: B_simple has a lower bound only
        out["b_simple_ci95"] = [trace / (g2 + q * se_g2) if g2 + q * se_g2 > 0 else None, None]
    return out


def _g2_fisher(x: np.ndarray) -> np.ndarray:
    """Fisher's unbiased excess kurtosis G2 of each column of x (rows: samples)."""
    m = x.shape[0]
    d = x - x.mean(axis=0)
    m2, m4 = np.mean(d**2, axis=0), np.mean(d**4, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = m4 / m2**2 - 3
    return ((m + 1) * g2 + 6) * (m - 1) / ((m - 2) * (m - 3))


def noise_kurtosis(grads, batch_size: int) -> dict:
    """Excess kurtosis of the noise at batch size B (coordinates with no spread are left out)."""
    grads = np.asarray(grads, dtype=np.float64)
    m = len(grads)
    if m < 5:
        raise ValueError(f"noise_kurtosis: {m} mini-batches; expected at least 5")
    keep = np.var(grads, axis=0) > 0
    x = grads[:, keep]
    if not keep.any():
        return {"m": m, "kurtosis": None, "kurtosis_se": None, "kurtosis_ci95": None, "per_sample": None}
    k = float(np.mean(_g2_fisher(x)))
    loo = np.array([np.mean(_g2_fisher(np.delete(x, i, axis=0))) for i in range(m)])
    se = _jackknife_se(loo)
    q = _t95(m - 1)
    return {"m": m, "coordinates": int(keep.sum()), "kurtosis": k, "kurtosis_se": se,
            "kurtosis_ci95": [k - q * se, k + q * se], "per_sample": batch_size * k}


def hill(abs_sorted_desc: np.ndarray, k: int) -> float:
    """Hill's estimate of the tail index from the k largest of n positive values (sorted desc)."""
    logs = np.log(abs_sorted_desc[: k + 1])
    return float(1.0 / np.mean(logs[:k] - logs[k]))


def tail_index(samples) -> dict:
    """Hill at k = √n with SE α/√k; `power_tail` false when α at k = n^0.4 and n^0.6 differ by
    more than their SEs allow (a light tail: α keeps growing as k shrinks)."""
    x = np.sort(np.abs(np.asarray(samples, dtype=np.float64).ravel()))[::-1]
    x = x[x > 0]
    n = len(x)
    if n < 100:
        return {"n": n, "k": None, "tail_index": None, "tail_index_ci95": None, "power_tail": None}
    ks = [max(10, int(n**p)) for p in (0.4, 0.5, 0.6)]
    a_small, alpha, a_large = (hill(x, k) for k in ks)
    se = alpha / math.sqrt(ks[1])
    z = (a_small - a_large) / math.sqrt(a_small**2 / ks[0] + a_large**2 / ks[2])
    return {"n": n, "k": ks[1], "tail_index": alpha, "tail_index_ci95": [alpha - 1.96 * se, alpha + 1.96 * se],
            "tail_index_by_k": dict(zip(ks, (a_small, alpha, a_large))), "power_tail": bool(abs(z) < 3)}
