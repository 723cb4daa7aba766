"""Issue 23.2: the near-optimal-band cross-check (lrscale.analysis.band) on sweeps with a known truth."""

import numpy as np
import pytest

from lrscale.analysis import band
from test_surface import BS, bowl, covers, make_sweep, power_law


def test_band_centres_follow_a_power_law_and_its_ci_covers_the_truth():
    r = band.fit_band(make_sweep(power_law(0.5), bowl, sigma=0.002, seed=3), lambda b: 0.002)
    assert r["left_out"] == [] and len(r["lr_opt"]) == len(BS)
    assert r["dof"] == len(BS) - 2 and covers(r["ci95"], 0.5)
    assert r["beta"] == pytest.approx(0.5, abs=0.1)
    for b in BS:  # each centre within half a grid step (0.25 decade) of the true optimum
        assert abs(np.log10(r["lr_opt"][str(b)]) - power_law(0.5)(b)) <= 0.25


def test_the_band_widens_with_the_noise_and_never_below_the_relative_tolerance():
    log_lrs, mean = np.array([-4.0, -3.5, -3.0, -2.5, -2.0]), np.array([1.10, 1.02, 1.00, 1.03, 1.20])
    assert band.centre(log_lrs, mean, se=None) == (-3.0, None)  # 0.25% of 1.0: only the best
    assert band.centre(log_lrs, mean, se=0.0125) == (pytest.approx(-3.25), None)  # 2 SEs = 0.025: three lrs
    assert band.centre(log_lrs, mean, se=0.1) == (None, "the band reaches the grid's edge")


def test_batch_sizes_without_a_band_inside_the_grid_are_left_out_with_why():
    sweep = make_sweep(power_law(0.5), bowl, sigma=0.002, seed=3)
    sweep.losses[8][:, :] = np.linspace(1.5, 1.0, 7)  # still falling at the largest lr: its band is cut
    sweep.losses[16][:, 1:] = np.nan  # one finite lr
    r = band.fit_band(sweep, lambda b: None, skip=[512])
    assert r["left_out"] == [{"batch_size": 8, "reason": "the band reaches the grid's edge"},
                             {"batch_size": 16, "reason": "fewer than 2 lrs with a finite loss"},
                             {"batch_size": 512, "reason": "flat: no curvature"}]
    assert sorted(map(int, r["lr_opt"])) == [32, 64, 128, 256] and r["beta"] is not None
    few = band.fit_band(sweep, lambda b: None, skip=[128, 256, 512])
    assert few["beta"] is None and few["reason"] == "2 batch sizes with a band inside the grid"


def test_the_centre_does_not_drift_toward_lrs_an_adaptive_round_added():
    log_lrs = np.array([-4.5, -4.0, -3.5, -3.0, -2.75, -2.5, -2.0])  # -2.75 added between grid points
    mean = 1 + 0.2 * (log_lrs + 3.1) ** 2
    # tolerance 0.04: the band is -3.5, -3.0, -2.75; its midpoint -3.125 (truth -3.1), where the mean of
    # the three would be -3.083, pulled toward the side the extra lr sits on
    assert band.centre(log_lrs, mean, se=0.02) == (pytest.approx(-3.125), None)
