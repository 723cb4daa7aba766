"""The shared-shape fit of the loss around every batch size's optimum (lrscale.analysis.shared_shape)."""

import math

import numpy as np
import pytest

from lrscale.analysis import fit, report, shared_shape

K, Q = 0.7, 0.35  # a steeper wall above the optimum, the shape fit_accuracy's asymmetric curves take


def curve(x, x_opt, level=1.0, c=0.2, k=K, q=Q):
    u = x - x_opt
    return level + c * (u**2 + k * u**3 + q * u**4)


def windows(optima, noise=0.0, rng=None, step=0.5, k=K):
    """5 points half a decade apart around each optimum, the best one at a different phase for each."""
    out = {}
    for j, (b, x_opt) in enumerate(optima.items()):
        x = x_opt + step * (np.arange(-2, 3) + 0.4 * (j / len(optima) - 0.5))
        y = curve(x, x_opt, level=1 + 0.1 * j, c=0.2 + 0.05 * j, k=k[j] if isinstance(k, tuple) else k)
        out[b] = (x, y + (rng.normal(0, noise, len(x)) if noise else 0.0), np.full(len(x), max(noise, 1e-3)))
    return out


OPTIMA = {8: -3.3, 16: -3.15, 32: -3.0, 64: -2.85, 128: -2.7}


def test_noiseless_shared_shape_recovers_every_optimum_and_the_shape():
    r = shared_shape.fit(windows(OPTIMA))
    assert r["used"]
    for b, x_opt in OPTIMA.items():
        assert r["x"][b] == pytest.approx(x_opt, abs=1e-8)
        x = np.linspace(x_opt - 1, x_opt + 1, 5)
        assert np.polyval(r["coef"][b], x) == pytest.approx(curve(x, x_opt, 1 + 0.1 * list(OPTIMA).index(b),
                                                                     0.2 + 0.05 * list(OPTIMA).index(b)), abs=1e-8)
    assert (r["k"], r["q"]) == (pytest.approx(K, abs=1e-7), pytest.approx(Q, abs=1e-7))
    assert r["chi2"] == pytest.approx(0, abs=1e-10) and r["dof"] == 25 - 17


def test_the_reported_se_is_the_spread_over_noise_draws():
    rng = np.random.default_rng(0)
    fits = [shared_shape.fit(windows(OPTIMA, noise=0.01, rng=rng)) for _ in range(300)]
    assert np.mean([f["used"] for f in fits]) > 0.9  # its two tests reject a true shape 1% + 5% of the time
    fits = [f for f in fits if f["used"]]
    for b, x_opt in OPTIMA.items():
        errors = np.array([f["x"][b] - x_opt for f in fits])
        se = np.median([f["se"][b] for f in fits])
        assert abs(errors.mean()) < 3 * se / math.sqrt(len(fits)) + 0.002  # unbiased (up to curvature of x̂)
        assert errors.std() == pytest.approx(se, rel=0.15)
        draws = np.array([f["draw"][b] @ rng.normal(0, 1, 25) for f in fits])  # the bootstrap's draws
        assert draws.std() == pytest.approx(errors.std(), rel=0.2)


def test_curves_of_different_shapes_are_not_forced_into_one():
    r = shared_shape.fit(windows(OPTIMA, k=(-0.6, 0.0, 0.7, 1.2, 0.2)))
    assert not r["used"]
    assert r["reason"].startswith("the shared shape misses the points (χ² = ")


def test_own_asymmetries_are_told_from_a_shared_one_without_sigma():
    rng = np.random.default_rng(3)
    shared = windows(OPTIMA, noise=0.002, rng=rng)
    own = windows(OPTIMA, noise=0.002, rng=rng, k=(-0.6, 0.0, 0.7, 1.2, 0.2))
    for w, expect_shared in ((shared, True), (own, False)):
        big_sd = {b: (x, y, 100 * sd) for b, (x, y, sd) in w.items()}  # σ overstated 100x: χ² has no say
        r = shared_shape.fit(big_sd)
        assert r["used"] is expect_shared, r
        if not expect_shared:
            assert r["shapes_differ"] and r["p_shared"] < shared_shape.SHARED_P and r["p_value"] > 0.5


def test_an_optimum_outside_its_bracket_declines_the_shape():
    w = windows(OPTIMA)
    brackets = {b: (x_opt - 0.2, x_opt + 0.2) for b, x_opt in OPTIMA.items()}
    assert shared_shape.fit(w, brackets)["used"]
    brackets[32] = (OPTIMA[32] + 0.01, OPTIMA[32] + 0.3)
    r = shared_shape.fit(w, brackets)
    assert not r["used"] and r["reason"] == "the shared shape puts the optimum of B=32 outside its bracket"
    assert "shapes_differ" not in r  # the tests passed: the verdict must not say the shapes differ


def test_an_alternative_that_cannot_be_fitted_is_no_evidence(monkeypatch):
    def failing(xs, y, sd, p0, k_index):  # the own-asymmetry fit (several k's) does not converge
        r = real_solve(xs, y, sd, p0, k_index)
        r.success = r.success and k_index.max() == 0
        return r

    real_solve = shared_shape._solve
    monkeypatch.setattr(shared_shape, "_solve", failing)
    r = shared_shape.fit(windows(OPTIMA, noise=0.01, rng=np.random.default_rng(5)))
    assert r["reason"] == "the shared shape could not be checked against an asymmetry of its own per B"
    assert r["p_shared"] is None and "shapes_differ" not in r


def test_too_few_full_windows():
    w = windows(OPTIMA)
    short = {b: (x[1:4], y[1:4], sd[1:4]) for b, (x, y, sd) in list(w.items())[:3]}
    r = shared_shape.fit({**short, **dict(list(w.items())[3:])})
    assert r == {"used": False, "reason": "fewer than 3 batch sizes with 5 points around their optimum"}


def test_no_noise_or_absurd_losses_are_declined_not_crashed():
    w = windows(OPTIMA)
    zero_sd = {b: (x, y, 0 * sd) for b, (x, y, sd) in w.items()}
    huge = {b: (x, y * 1e300, sd) for b, (x, y, sd) in w.items()}
    for bad in (zero_sd, huge):
        assert shared_shape.fit(bad) == {"used": False, "reason": "no positive noise SD, or losses too large to fit"}


def test_a_shape_with_a_second_stationary_point_in_a_window_is_refused():
    assert shared_shape._single_minimum(0.7, 0.35, [(-1.0, 1.0)])  # 2 + 2.1u + 1.4u² > 0 everywhere
    assert not shared_shape._single_minimum(3.0, 0.0, [(-1.0, 1.0)])  # 2 + 9u = 0 at u = -0.22
    assert shared_shape._single_minimum(3.0, 0.0, [(-0.2, 1.0)])


def steep_walled_sweep(seeds=2, sigma=0.01, rng=None):
    """7 batch sizes, one grid of 7 lrs, the optimum moving as B^0.5: 0.2 d² + 0.4 d³ above it."""
    rng = rng or np.random.default_rng(1)
    bs = [8, 16, 32, 64, 128, 256, 512]
    lrs = 10 ** (-4.4 + 0.5 * np.arange(7))
    truth = {b: -3.4 + 0.5 * math.log10(b / 8) for b in bs}
    losses = {}
    for b in bs:
        d = np.log10(lrs) - truth[b]
        losses[b] = 1.0 + 0.2 * d**2 + 0.4 * np.maximum(d, 0) ** 3 + rng.normal(0, sigma, (seeds, 7))
    return fit.Sweep(bs, {b: lrs for b in bs}, losses, {b: None for b in bs}, "synthetic", list(range(seeds))), truth


def test_analyse_uses_the_shared_shape_and_says_so():
    sweep, truth = steep_walled_sweep()
    r = fit.analyse(sweep, bootstrap=0)
    assert r["shared_shape"]["used"] and r["shape_bias_log10"]["model"] == "shared_shape"
    assert sorted(r["shared_shape"]["batch_sizes"]) == sweep.batch_sizes
    assert r["shared_shape"]["k_per_decade"] > 0  # the wall is above the optimum
    for p in r["per_batch"]:
        z = (math.log10(p["lr_opt"]) - truth[p["batch_size"]]) / p["lr_opt_se_log10"]
        assert abs(z) < 4 and p["local_fit"] and p["lr_opt_vertex"] != p["lr_opt"]
    assert "optima of every B from one loss shape they share" in r["verdict"]
    j = r["shared_shape"]
    assert r["noise_share"] == pytest.approx(1 / max(1, j["chi2"] / j["dof"]))
    assert r["bootstrap"]["method"].endswith("; shared-shape optima through its linearisation")
    text = report.locating_text(r)
    assert text.startswith("Located by one loss shape shared by B = 8, 16, 32, 64, 128, 256, 512:")
    assert "The SEs rest on these curves sharing that shape." in text


def test_analyse_falls_back_to_per_b_quadratics_when_the_shape_is_not_shared():
    sweep, _ = steep_walled_sweep(sigma=0.0005)
    for j, b in enumerate(sweep.batch_sizes):  # the wall moves to the other side on half of them
        if j % 2:
            sweep.losses[b] = sweep.losses[b][:, ::-1]
    r = fit.analyse(sweep, bootstrap=0)
    assert not r["shared_shape"]["used"] and "misses the points" in r["shared_shape"]["reason"]
    assert r["shape_bias_log10"]["model"] == "floor"
    assert not any(p["local_fit"] for p in r["per_batch"])  # null: no shared-shape curve
    assert all(p["method"].startswith("quadratic") for p in r["per_batch"])
    assert "loss shape they share" not in r["verdict"]
    assert "the loss curves differ in shape between batch sizes around their optima" in r["verdict"]
    assert "(no shared shape: the shared shape misses the points" in report.locating_text(r)


def test_one_seed_does_not_use_the_shared_shape():
    sweep, _ = steep_walled_sweep(seeds=1)
    r = fit.analyse(sweep, bootstrap=0)
    assert r["shared_shape"] == {"used": False,
                                 "reason": "one seed: no noise estimate independent of the curves' shapes"}
    assert "differ in shape" not in r["verdict"]


def test_the_verdict_names_the_batch_sizes_the_shape_covers():
    sweep, _ = steep_walled_sweep()
    sweep.losses[512][:, 5:] = np.nan  # diverged above its best lr: an edge, kept with include_edge
    r = fit.analyse(sweep, bootstrap=0, include_edge=True)
    assert 512 in r["included_batch_sizes"] and 512 not in r["shared_shape"]["batch_sizes"]
    assert "optima of B = 8, 16, 32, 64, 128, 256 from one loss shape they share" in r["verdict"]

