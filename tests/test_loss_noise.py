"""Issue 28.3: σ of one run's loss per batch size (lrscale.analysis.loss_noise), carried into every SE."""

import math

import numpy as np
import pytest

from lrscale.analysis import loss_noise
from lrscale.analysis.fit import Sweep, analyse
from lrscale.analysis.report import noise_text, summary_table

BATCH = [8, 16, 32, 64, 128, 256, 512]
NOISY_SMALL_B = [0.04, 0.03, 0.004, 0.003, 0.002, 0.002, 0.0015]  # σ per B: small batches 10-25x noisier


def truth(b):
    return 1e-3 * (b / 64) ** 0.5


def sweep(sigmas, curvature_512=0.2, seed=0, seeds=2, missing_repeats=()):
    """Half-decade grid, power law β = 0.5, curvature 0.2/decade² (B=512's as given); the batch sizes
    in `missing_repeats` ran one seed only."""
    rng = np.random.default_rng(seed)
    lrs = 10 ** (-4.25 + 0.5 * np.arange(7))
    losses = {}
    for b, sig in zip(BATCH, sigmas):
        d = np.log10(lrs) - np.log10(truth(b))
        c = curvature_512 if b == 512 else 0.2
        losses[b] = 1 + 1 / np.sqrt(b) + c * d**2 + rng.normal(0, sig, (seeds, 7))
        if b in missing_repeats:
            losses[b][1:] = np.nan
    ran = {b: ~np.isnan(losses[b]) if b in missing_repeats else None for b in BATCH}
    s = Sweep(BATCH, {b: lrs for b in BATCH}, losses, {b: None for b in BATCH}, "synthetic", list(range(seeds)))
    s.ran = {b: r for b, r in ran.items() if r is not None}
    return s


@pytest.mark.parametrize("seed", range(3))
def test_a_quiet_large_batch_is_not_judged_by_the_noisy_small_ones(seed):
    """The issue's case: B=512's shallow minimum judged against σ pooled from noisy small batches was
    flagged flat (curvature t 1.3-2.1 on these sweeps before); against its own σ it is located, and
    its CI covers the truth."""
    r = analyse(sweep(NOISY_SMALL_B, curvature_512=0.02, seed=seed), bootstrap=0)
    m, b512 = r["noise_by_batch"], r["per_batch"][-1]
    assert m["per_batch"] is True and m["p_value"] < 0.05
    assert m["sigma"]["8"] > 5 * m["sigma"]["512"]
    assert "flat" not in b512["flags"] and b512["included"]
    lo, hi = b512["lr_opt_ci95"]
    assert lo <= truth(512) <= hi
    assert b512["noise_sigma"] == m["sigma"]["512"] and b512["noise_sigma_dof"] == m["dof"]["512"]


def test_small_batch_ci_widens_with_its_own_noise():
    """B=8's SE follows its own (larger) σ: wider than under the pooled σ, which is smaller there."""
    r = analyse(sweep(NOISY_SMALL_B, seed=4), bootstrap=0)
    b8 = r["per_batch"][0]
    assert b8["noise_sigma"] > r["noise_sigma"]
    se_pooled = b8["lr_opt_se_log10"] * r["noise_sigma"] / b8["noise_sigma"]  # the noise part scales with σ
    assert b8["lr_opt_se_log10"] > 1.5 * se_pooled


def test_one_sigma_when_the_spreads_agree():
    """The same σ at every B: one pooled σ, exactly as before (the calibrated default)."""
    r = analyse(sweep([0.01] * 7, seed=1), bootstrap=0)
    m = r["noise_by_batch"]
    assert m["per_batch"] is False and "agree" in m["reason"] and m["p_value"] >= 0.05
    assert set(m["sigma"].values()) == {r["noise_sigma"]}
    assert all(row["noise_sigma"] == r["noise_sigma"] for row in r["per_batch"])


def test_one_seed_keeps_the_pooled_sigma():
    r = analyse(sweep(NOISY_SMALL_B, seeds=1), bootstrap=0)
    assert r["noise_by_batch"]["per_batch"] is False and "no seed repeats" in r["noise_by_batch"]["reason"]


def test_a_batch_size_without_repeats_takes_the_trend():
    """σ ∝ B^-½ with B=64 run once per lr: its σ comes from the trend through the others."""
    sigmas = [0.02 * (b / 8) ** -0.5 for b in BATCH]
    r = analyse(sweep(sigmas, seed=2, missing_repeats=(64,)), bootstrap=0)
    m = r["noise_by_batch"]
    assert m["per_batch"] is True and "64" not in m["own_sigma"]
    assert m["sigma"]["32"] > m["sigma"]["64"] > m["sigma"]["128"]
    assert m["sigma_slope_ln_b"] == pytest.approx(-0.5, abs=0.2)


def test_model_shrinks_a_lone_outlier_toward_the_others():
    """Six B agree on σ = 0.01 (5 dof each), one reads 0.05: heterogeneous (Q test), no trend in B;
    the outlier's σ is pulled toward the rest (a 3x outlier on 5 dof is not evidence enough: p 0.2)."""
    spread = {b: (5 * 0.01**2, 5) for b in BATCH}
    spread[128] = (5 * 0.03**2, 5)
    assert loss_noise.model(spread, (0.014, 35, "seed spread"), BATCH)["per_batch"] is False
    spread[128] = (5 * 0.05**2, 5)
    pooled = (math.sqrt(sum(ss for ss, _ in spread.values()) / 35), 35, "seed spread")
    m = loss_noise.model(spread, pooled, BATCH)
    assert m["per_batch"] is True and m["p_slope"] >= 0.05 and m["sigma_slope_ln_b"] == 0
    assert 0.01 < m["sigma"][128] < 0.05 and m["sigma"][8] == pytest.approx(m["sigma"][16])
    assert m["sigma"][8] < m["sigma"][128] and all(m["dof"][b] <= 35 for b in BATCH)


def test_report_shows_sigma_per_batch_size():
    r = analyse(sweep(NOISY_SMALL_B, seed=0), bootstrap=0)
    table = summary_table(r)
    assert "noise σ" in table.splitlines()[0]
    assert f"{r['per_batch'][0]['noise_sigma']:.3g}" in table.splitlines()[2]
    assert noise_text(r).startswith("Noise: σ modelled per batch size")
