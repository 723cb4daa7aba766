"""lrscale.noise on hand-computed fixtures (the closed-form validation is bench/noise_estimators.py)."""

import numpy as np
import pytest
from scipy import stats

from lrscale import noise


def test_noise_scale_by_hand():
    # rows (mean gradients of m = 3 mini-batches of B = 4): mean (2, 0); Σ|row − mean|²/(m − 1) = 1
    r = noise.noise_scale([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0]], batch_size=4)
    assert r["trace_sigma"] == pytest.approx(4.0)  # B × 1
    assert r["g2"] == pytest.approx(4.0 - 1 / 3)  # |mean|² − 1/m
    assert r["b_simple"] == pytest.approx(4.0 / (4.0 - 1 / 3))


def test_jackknife_leave_one_out_matches_brute_force():
    rng = np.random.default_rng(0)
    g = rng.normal(1.0, 2.0, size=(12, 5))
    r = noise.noise_scale(g, 8)
    loo_trace = [noise.noise_scale(np.delete(g, i, 0), 8)["trace_sigma"] for i in range(12)]
    loo_g2 = [noise.noise_scale(np.delete(g, i, 0), 8)["g2"] for i in range(12)]
    jack = lambda v: np.sqrt(11 / 12 * np.sum((np.array(v) - np.mean(v)) ** 2))  # noqa: E731
    assert r["trace_sigma_se"] == pytest.approx(jack(loo_trace))
    assert r["g2_se"] == pytest.approx(jack(loo_g2))


def test_skewed_estimates_get_their_ci_on_the_log_scale():
    rng = np.random.default_rng(3)
    g = rng.laplace(size=(16, 40))
    r, q = noise.noise_scale(g, 8), stats.t.ppf(0.975, 15)
    loo = np.array([noise.noise_scale(np.delete(g, i, 0), 8)["trace_sigma"] for i in range(16)])
    se_log = np.sqrt(15 / 16 * np.sum((np.log(loo) - np.log(loo).mean()) ** 2))
    assert r["trace_sigma_ci95"] == pytest.approx([r["trace_sigma"] * np.exp(-q * se_log), r["trace_sigma"] * np.exp(q * se_log)])
    k = noise.noise_kurtosis(g, 8)
    loo = np.array([noise.noise_kurtosis(np.delete(g, i, 0), 8)["kurtosis"] for i in range(16)])
    se_log = np.sqrt(15 / 16 * np.sum((np.log(loo + 2) - np.log(loo + 2).mean()) ** 2))
    lo, hi = k["kurtosis_ci95"]
    assert [lo + 2, hi + 2] == pytest.approx([(k["kurtosis"] + 2) * np.exp(-q * se_log), (k["kurtosis"] + 2) * np.exp(q * se_log)])
    assert hi - k["kurtosis"] > k["kurtosis"] - lo  # wider above: the estimate's law is skewed right


def test_log_ci_falls_back_to_the_plain_scale_kept_at_its_bound():
    g = np.zeros((16, 5))
    g[0] = 1.0  # one row carries all the spread: without it tr(Σ) is 0, log undefined
    lo, hi = noise.noise_scale(g, 8)["trace_sigma_ci95"]
    assert lo == 0.0 and hi > noise.noise_scale(g, 8)["trace_sigma"]
    two_point = np.tile([1.0, -1.0], 8)[:, None] * np.ones((16, 3))  # excess kurtosis −2, on its bound
    r = noise.noise_kurtosis(two_point, 8)
    assert r["kurtosis"] < noise.KURTOSIS_FLOOR  # the unbiased estimate can cross the bound; the CI cannot
    assert r["kurtosis_ci95"] == [noise.KURTOSIS_FLOOR, noise.KURTOSIS_FLOOR]  # every row alike: SE 0


def test_b_simple_open_above_when_the_mean_gradient_is_lost_in_noise():
    rng = np.random.default_rng(1)
    r = noise.noise_scale(rng.normal(0.0, 1.0, size=(16, 50)), 8)  # G = 0
    assert r["b_simple_ci95"][1] is None
    assert r["b_simple_ci95"][0] is None or r["b_simple_ci95"][0] > 0


def test_kurtosis_is_a_ratio_of_summed_unbiased_cumulants():
    rng = np.random.default_rng(2)
    g = rng.standard_t(5, size=(40, 7)) * np.arange(1, 8)  # coordinates of different scales
    g[:, 3] = 1.0  # no spread: left out
    r = noise.noise_kurtosis(g, 8)
    keep = [0, 1, 2, 4, 5, 6]
    k4 = np.array([stats.kstat(g[:, j], 4) for j in keep])  # Fisher's unbiased fourth cumulant
    k2 = np.array([stats.kstat(g[:, j], 2) for j in keep])
    sigma4 = (k2**2 - k4 / 40) * 39 / 41  # unbiased for κ2²
    assert r["coordinates"] == 6
    assert r["kurtosis"] == pytest.approx(k4.sum() / sigma4.sum())
    assert r["per_sample"] == pytest.approx(8 * r["kurtosis"])
    assert r["kurtosis_ci95"][0] < r["kurtosis"] < r["kurtosis_ci95"][1]


def test_kurtosis_near_zero_for_gaussian_and_scale_free():
    rng = np.random.default_rng(4)
    g = rng.normal(size=(400, 30))
    r = noise.noise_kurtosis(g, 1)
    assert abs(r["kurtosis"]) < 3 * r["kurtosis_se"] + 0.05
    assert noise.noise_kurtosis(g * 1e3, 1)["kurtosis"] == pytest.approx(r["kurtosis"])


def test_too_few_minibatches_is_a_clear_error():
    with pytest.raises(ValueError, match="expected at least 3"):
        noise.noise_scale([[1.0], [2.0]], 4)
    with pytest.raises(ValueError, match="expected at least 5"):
        noise.noise_kurtosis(np.ones((4, 2)), 4)


def test_kurtosis_jackknife_matches_brute_force_leave_one_out():
    rng = np.random.default_rng(5)
    g = rng.laplace(3.0, 1.0, size=(16, 9)) * np.geomspace(1e-3, 1e3, 9)  # mean far from 0, any scale
    full, loo = noise._pooled_kurtosis(g)
    brute = [noise._pooled_kurtosis(np.delete(g, i, axis=0))[0] for i in range(16)]
    assert loo == pytest.approx(brute, rel=1e-9)
    k4 = np.array([stats.kstat(g[:, j], 4) for j in range(9)])
    assert full == pytest.approx(k4.sum() / sum((stats.kstat(g[:, j], 2) ** 2 - k4[j] / 16) * 15 / 17 for j in range(9)))


def _probe(rng, m=16, p=40, b=8):
    # rows: mean gradients of m mini-batches of B samples: G = 0.3 per coordinate, per-sample variance 1
    # → tr(Σ) = p, |G|² = 0.09 p, B_simple = 1 / 0.09 = 11.1
    grads = 0.3 + rng.normal(0, 1 / np.sqrt(b), size=(m, p))
    return {**noise.noise_scale(grads, b), **noise.noise_kurtosis(grads, b), "m": m}


def test_seeds_pooled_narrow_the_ci_and_cover():
    # issue 23.5: with several seeds the CI was the envelope of theirs (wider with every seed added)
    rng = np.random.default_rng(7)
    truth, hits, pooled_w, single_w = 1 / 0.09, 0, [], []
    for _ in range(200):
        probes = [_probe(rng) for _ in range(4)]
        value, ci = noise.pooled(probes, "b_simple")
        hits += ci[0] <= truth <= ci[1]
        pooled_w.append(np.log(ci[1] / ci[0]))
        single_w.append(np.log(probes[0]["b_simple_ci95"][1] / probes[0]["b_simple_ci95"][0]))
        assert value == pytest.approx(np.exp(np.mean(np.log([p["b_simple"] for p in probes]))))  # geometric mean
    assert 0.88 <= hits / 200 <= 0.99
    assert np.median(pooled_w) < 0.7 * np.median(single_w)  # 4 seeds: about half as wide as one


def test_one_seed_keeps_its_own_ci_and_an_open_ci_falls_back_to_the_envelope():
    probes = [_probe(np.random.default_rng(s)) for s in range(2)]
    assert noise.pooled(probes[:1], "kurtosis") == (probes[0]["kurtosis"], probes[0]["kurtosis_ci95"])
    probes[1]["b_simple_ci95"] = [probes[1]["b_simple_ci95"][0], None]
    value, ci = noise.pooled(probes, "b_simple")
    assert value == pytest.approx(np.median([p["b_simple"] for p in probes]))
    assert ci == [min(p["b_simple_ci95"][0] for p in probes), None]
    assert noise.pooled([{"b_simple": None}], "b_simple") == (None, None)


def test_seeds_that_differ_widen_the_ci_with_their_own_dof():
    # two seeds whose B_simple differ far beyond their own CIs: the between-seed SE wins, with 1 dof
    probes = [_probe(np.random.default_rng(s)) for s in range(2)]
    probes[1] = {**probes[1], "b_simple": probes[1]["b_simple"] * 3,
                 "b_simple_ci95": [c * 3 for c in probes[1]["b_simple_ci95"]]}
    value, (lo, hi) = noise.pooled(probes, "b_simple")
    logs = np.log([p["b_simple"] for p in probes])
    se_between = np.std(logs, ddof=1) / np.sqrt(2)
    assert np.log(hi / lo) / 2 == pytest.approx(stats.t.ppf(0.975, 1) * se_between)
