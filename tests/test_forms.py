"""Issue 10: the functional forms of lr_opt(B), the per-B uncertainty and the verdict's wording,
each on hand-computed fixtures."""

import math

import numpy as np
import pytest

from lrscale.analysis import forms, optima, verdict

B = np.array([8, 16, 32, 64, 128, 256, 512], float)
SE = np.full(7, 0.05)  # SE of ln lr_opt


@pytest.mark.parametrize("b_noise", [24.0, 64.0, 300.0])
def test_noiseless_mccandlish_recovers_b_noise_exactly(b_noise):
    lr = 0.02 / (1 + b_noise / B)
    r = forms.compare(B, lr, SE)
    f = r["fits"]["mccandlish"]
    assert f["b_noise"] == pytest.approx(b_noise, rel=1e-6) and f["scale"] == pytest.approx(0.02, rel=1e-6)
    assert f["chi2"] == pytest.approx(0, abs=1e-9)
    assert f["local_slope"]["smallest_b"] == pytest.approx(b_noise / (8 + b_noise))  # d ln lr / d ln B
    assert r["preferred_form"] == "mccandlish"
    lo, hi = f["b_noise_ci95"]
    assert lo < b_noise < hi


def test_noiseless_surge_recovers_peak():
    lr = 3e-3 / (0.5 * (np.sqrt(100 / B) + np.sqrt(B / 100)))
    r = forms.compare(B, lr, SE)
    f = r["fits"]["surge"]
    assert f["b_noise"] == pytest.approx(100, rel=1e-6) and f["scale"] == pytest.approx(3e-3, rel=1e-6)
    assert f["local_slope"]["largest_b"] == pytest.approx(0.5 * (100 - 512) / (100 + 512))
    assert r["preferred_form"] == "surge"


def test_power_law_is_kept_when_a_bending_form_only_matches_it():
    # β = 1 is McCandlish's B_noise -> ∞ limit: an equal fit is no evidence of a bend
    r = forms.compare(B, 1e-5 * B, SE)
    assert r["preferred_form"] == "power_law"
    assert r["fits"]["power_law"]["beta"] == pytest.approx(1.0)
    assert r["fits"]["mccandlish"]["b_noise_unbounded"] or r["fits"]["mccandlish"]["b_noise"] > 1e4


def test_none_when_no_form_fits():
    zigzag = 1e-3 * np.array([1, 4, 1, 4, 1, 4, 1.0])  # 0.6 decades up and down, SE 0.05
    r = forms.compare(B, zigzag, SE)
    assert r["preferred_form"] == "none" and "no form describes" in r["preference_reason"]


@pytest.mark.parametrize("surge_chi2, choice, weak", [(9.0, "mccandlish", False), (7.0, "mccandlish", False),
                                                      (6.0, "mccandlish", True), (5.5, "mccandlish", True),
                                                      (5.3, "undecided", False)])
def test_two_bends_close_in_chi2_are_weak_then_undecided(surge_chi2, choice, weak):
    fits = {"power_law": {"form": "power_law", "chi2": 20.0, "gof_p": 0.5},
            "mccandlish": {"form": "mccandlish", "chi2": 5.0, "gof_p": 0.5},
            "surge": {"form": "surge", "chi2": surge_chi2, "gof_p": 0.5}}
    r = forms.prefer(fits)
    assert r["preferred_form"] == choice
    assert ("the surge form is only Δχ² = 1.0 behind" in r["preference_reason"]) == (weak and surge_chi2 == 6.0)
    assert ("the surge form is only Δχ²" in r["preference_reason"]) == weak


def test_a_close_second_is_named_even_when_it_misses_the_power_law_bar():
    fits = {"power_law": {"form": "power_law", "chi2": 6.5, "gof_p": 0.5},
            "mccandlish": {"form": "mccandlish", "chi2": 2.0, "gof_p": 0.5},
            "surge": {"form": "surge", "chi2": 3.5, "gof_p": 0.5}}  # 3 below the power law: not a candidate
    r = forms.prefer(fits)
    assert r["preferred_form"] == "mccandlish" and "the surge form is only Δχ² = 1.5 behind" in r["preference_reason"]


def test_gradients_sentence_shows_mccandlish_b_noise_when_it_is_only_weakly_behind():
    fits = {"power_law": {"chi2": 20.0}, "surge": {"chi2": 5.0},
            "mccandlish": {"chi2": 6.0, "b_noise": 70.0, "b_noise_ci95": [40.0, 130.0]}}
    r = {"forms": fits, "preferred_form": "surge", "gradient_noise": {"b_simple_median": 85.0, "per_batch": [{}]}}
    assert "loss surface says B_noise = 70 [40, 130]" in verdict.noise_sentence(r)
    fits["mccandlish"]["chi2"] = 9.0
    assert "loss surface" not in verdict.noise_sentence(r)


def test_wls_line_hand_computed():
    x, y = np.array([0.0, 1, 2]), np.array([0.0, 1.0, 3.0])
    var = np.array([1.0, 1.0, 0.25])  # weights 1, 1, 4
    line = forms.wls_line(x, y, var)
    # weighted means: x̄ = (0+1+8)/6 = 1.5, ȳ = (0+1+12)/6 = 13/6; Sxx = 2.25+0.25+1 = 3.5
    # Sxy = 1.5*13/6 + (-0.5)(1-13/6) + 4*0.5*(3-13/6) = 3.25 + 7/12 + 5/3 = 5.5  ->  β = 11/7
    assert line["beta"] == pytest.approx(11 / 7)
    assert line["intercept"] == pytest.approx(13 / 6 - 11 / 7 * 1.5)
    resid = y - (line["intercept"] + line["beta"] * x)
    chi2 = float(np.sum(resid**2 / var))
    assert line["chi2"] == pytest.approx(chi2) and line["dof"] == 1
    assert line["se"] == pytest.approx(math.sqrt(chi2 / 1) / math.sqrt(3.5))
    assert forms.wls_line(x, y, var, inflate_only=True)["se"] == pytest.approx(max(1.0, math.sqrt(chi2)) / math.sqrt(3.5))


def test_three_point_vertex_se_by_the_delta_method():
    # y = (x - x0)^2 through x = -1, 0, 1; vertex x0 = 0.2; with h = 1 the vertex is
    # x0 = (y- - y+) / (2 (y- - 2 y0 + y+)), so d x0 / d y = (1/(2 d2)) (1 - 2 x0, 4 x0, -1 - 2 x0) with d2 = 2
    x = np.array([-1.0, 0.0, 1.0])
    y = (x - 0.2) ** 2
    v = optima.vertex(x, y, [0, 1, 2], np.ones(3), sd=np.full(3, 0.1))
    grad = np.array([1 - 0.4, 0.8, -1 - 0.4]) / 4
    assert v["x"] == pytest.approx(0.2)
    assert v["se"] == pytest.approx(0.1 * math.sqrt(np.sum(grad**2)))


def test_curvature_t_uses_five_points():
    x = np.array([-2.0, -1, 0, 1, 2])
    # y = x²: a = 1; the quadratic contrast x² − 2 = (2, −1, −2, −1, 2) gives Var a = σ² / 14
    assert optima.curvature_t(x, x**2, 2, np.full(5, 0.1)) == pytest.approx(math.sqrt(14) / 0.1)
    # at the edge only 3 points are within 2 steps: a = (y0 − 2 y1 + y2) / 2, Var a = 6 σ² / 4
    assert optima.curvature_t(x, x**2, 0, np.full(5, 0.1)) == pytest.approx(1 / (0.1 * math.sqrt(1.5)))


def test_shape_bias_floor_from_quadratic_vs_cubic():
    # (d, Var d) per batch size: the mean of d² − Var d is the total bias variance, the variance of d
    # beyond Var d its B-to-B part; each is at least FLOOR_STEPS grid steps
    total, across = optima.shape_floor([(0.10, 0.0004), (0.06, 0.0004), (0.08, 0.0004)], 0.5)
    assert total == pytest.approx(math.sqrt((0.01 + 0.0036 + 0.0064) / 3 - 0.0004))
    assert across == pytest.approx(math.sqrt(max(0.0004 - 0.0004, (optima.FLOOR_STEPS * 0.5) ** 2)))
    assert optima.total_se(0.03, 0.04) == pytest.approx(0.05)


def test_noiseless_asymmetric_curve_bias_is_seen():
    # a steeper wall above the optimum pulls the 3-point vertex left; the cubic sees the wall
    x = np.linspace(-4.5, -1.5, 7) + 0.1
    d = x + 3.0
    loss = 0.2 * d**2 + 0.4 * np.maximum(d, 0) ** 3
    loc = optima.locate(10**x, loss, sd=np.full(7, 1e-6))
    bias, var = loc["shape_bias"]
    assert math.log10(loc["lr_opt"]) < -3.0  # biased towards the plateau
    assert abs(bias) > 0.02 and var < 1e-8


def _result(ci_t, ci_b=None, pref="power_law"):
    hyps = [{"beta": h, "name": verdict.HYPOTHESIS_NAMES[h], "in_ci95_t": ci_t[0] <= h <= ci_t[1],
             "in_ci95_bootstrap": None if ci_b is None else ci_b[0] <= h <= ci_b[1]} for h in (0.5, 0.667, 1.0)]
    unbounded = {"chi2": 3.0, "b_noise": 1e6, "b_noise_ci95": [1e4, None]}  # a power law in disguise
    fits = {"power_law": {"chi2": 3.0}, "mccandlish": unbounded, "surge": unbounded}
    return {"beta": sum(ci_t) / 2, "ci95_t": ci_t, "ci95_bootstrap": ci_b, "hypotheses": hyps, "preferred_form": pref, "noise_share": 0.4,
            "forms": fits}


def test_between_two_hypotheses():
    s = verdict.hypothesis_sentence(_result([0.55, 0.62], [0.54, 0.63]), [0.5, 0.667, 1.0])
    assert s.startswith("between 0.5 (square-root / Gaussian) and 0.667 (Laplace)")


def test_a_hypothesis_held_by_either_ci_counts():
    # the t-CI holds only 0.5 but the bootstrap CI holds 0.667 too: not separated
    s = verdict.hypothesis_sentence(_result([0.45, 0.6], [0.47, 0.7]), [0.5, 0.667, 1.0])
    assert s.startswith("NOT separated") and "noise share" not in s and "seeds instead" not in s  # 23.4: unmeasured
    s = verdict.hypothesis_sentence(_result([0.45, 0.6], [0.46, 0.61]), [0.5, 0.667, 1.0])
    assert s.startswith("0.5 (square-root / Gaussian) is the only hypothesis inside the CIs (β̂ = ")
    s = verdict.hypothesis_sentence(_result([1.2, 1.4], [1.1, 1.5]), [0.5, 0.667, 1.0])
    assert "above all of them" in s


def test_single_hypothesis_withheld_when_a_bend_is_plausible():
    r = _result([0.45, 0.6], [0.46, 0.61])
    r["forms"]["mccandlish"] = {"chi2": 0.5, "b_noise": 100.0, "b_noise_ci95": [40.0, 400.0]}
    s = verdict.hypothesis_sentence(r, [0.5, 0.667, 1.0])
    assert "consistent with" not in s and "a bend is not excluded" in s and "B_noise = 100" in s


def test_cis_that_disagree_around_a_hypothesis():
    s = verdict.hypothesis_sentence(_result([0.40, 0.48], [0.52, 0.60]), [0.5, 0.667, 1.0])
    assert "disagree" in s and "0.5 (square-root / Gaussian) lies between them" in s and "below all" not in s


def test_separation_gap_uses_sorted_hypotheses():
    r = _result([0.4, 1.1])
    r["hypotheses"] = [r["hypotheses"][0], r["hypotheses"][2], r["hypotheses"][1]]  # given as 0.5, 1.0, 0.667
    assert "half-width below 0.084" in verdict.hypothesis_sentence(r, [0.5, 1.0, 0.667])


def test_argmin_se_includes_the_grid_quantisation():
    x = np.linspace(-4.5, -1.5, 7)
    loss = 0.2 * (x + 3.1) ** 2
    par = optima.locate(10**x, loss, "parabola", sd=np.full(7, 0.01))
    arg = optima.locate(10**x, loss, "argmin", sd=np.full(7, 0.01))
    assert arg["lr_opt"] == pytest.approx(1e-3) and par["lr_opt"] == pytest.approx(10**-3.1)
    assert arg["se_log10"] == pytest.approx(math.sqrt(par["se_log10"] ** 2 + 0.5**2 / 12))


def _asym(d):
    return 0.2 * d**2 + 0.4 * np.maximum(d, 0) ** 3


def test_one_seed_sigma_removes_the_shape_every_batch_size_shares():
    # three batch sizes, one steep-walled curve (same grid phase), each plus ±e or 0 along the 5-point
    # cubic's residual direction: the raw residuals are mostly shape; removing their mean leaves e
    lrs = 10 ** np.linspace(-4.5, -1.5, 7)
    base = _asym(np.log10(lrs) + 3.0)
    e = 0.004
    tables = {}
    for b, k in zip((8, 16, 32), (1, -1, 0)):
        loss = base.copy()
        loss[1:6] += k * e * optima.FOURTH_DIFFERENCE
        tables[b] = loss[None, :]
    raw = abs(float(optima.FOURTH_DIFFERENCE @ base[1:6]))
    sigma, dof, source = optima.pooled_sigma({b: lrs for b in tables}, tables)
    assert raw > 5 * e  # what the raw residuals would have called noise
    assert (sigma, dof, source) == (pytest.approx(e), 2, "local cubic residuals")


def test_b_noise_ci_is_f_calibrated_when_the_scatter_scales_the_weights():
    """Issue 23: with χ²/dof > 1 the weights are rescaled by s² from only dof residuals, so the
    profile's 95% level is F(1, dof)·s² (it was χ²₁'s 3.841·s²: about 25% too narrow at 5 dof)."""
    from scipy import stats

    b = np.array([8, 16, 32, 64, 128, 256, 512.0])
    y = np.log(1 / (1 + 64 / b)) + np.array([0.3, -0.3, 0.25, -0.2, 0.3, -0.25, 0.2])
    var = np.full(7, 0.01)
    f = forms.fit_bending("mccandlish", b, y, var)
    s2 = f["chi2"] / f["dof"]
    assert s2 > 1
    level = stats.f.ppf(0.95, 1, f["dof"]) * s2
    w = 1 / var
    for end in f["b_noise_ci95"]:
        chi2_end = forms._profile("mccandlish", np.log(b), y, w, [math.log(end)])[0][0]
        assert chi2_end - f["chi2"] == pytest.approx(level, rel=0.05)
