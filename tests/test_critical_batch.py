"""Issue 24.4: the critical batch size from the steps–samples tradeoff (lrscale.analysis.critical_batch)."""

import math

import numpy as np
import pytest

from lrscale.analysis.critical_batch import fit_b_crit, steps_to_target

B = np.array([8, 16, 32, 64, 128, 256, 512])


def test_steps_to_a_target_are_interpolated_in_log_steps_between_bracketing_horizons():
    assert steps_to_target([100, 200, 400, 800], [3.0, 2.5, 2.1, 1.9], 2.3) == pytest.approx(200 * math.sqrt(2))
    assert steps_to_target([100, 200], [3.0, 2.5], 2.0) is None  # never reached
    assert steps_to_target([100, 200], [1.9, 1.5], 2.0) is None  # reached before the first horizon: not known
    assert steps_to_target([100, 200, 400], [3.0, math.nan, 2.0], 2.5) == pytest.approx(200)  # NaN horizon skipped


def test_an_exact_mccandlish_curve_gives_back_its_b_crit_with_either_knee():
    steps = 1000 * (1 + 100 / B)
    for free in (True, False):
        r = fit_b_crit(B, steps, free_knee=free)
        assert r["b_crit"] == pytest.approx(100, rel=1e-4) and r["s_min"] == pytest.approx(1000, rel=1e-4)
        assert r["dof"] == 7 - 2 - free
    assert fit_b_crit(B, steps)["knee_exponent"] == pytest.approx(1.0, abs=1e-3)


def test_the_ci_covers_under_noise_and_opens_where_the_batch_sizes_cannot_bound_it():
    rng = np.random.default_rng(0)
    held = []
    for _ in range(100):
        r = fit_b_crit(B, 1000 * (1 + 100 / B) * np.exp(rng.normal(0, 0.03, len(B))))
        lo, hi = r["ci95"]
        held.append((lo is None or lo <= 100) and (hi is None or 100 <= hi))
    assert 0.88 <= np.mean(held) <= 1.0
    far_above = np.array([4096, 8192, 16384, 32768])  # S barely depends on B: no lower bound on B_crit
    r = fit_b_crit(far_above, 1000 * (1 + 8 / far_above) * np.exp(rng.normal(0, 0.03, 4)))
    assert r["ci95"][0] is None


def test_too_few_batch_sizes_reaching_the_target_is_a_reason_not_a_number():
    r = fit_b_crit(B, [None, None, None, None, None, 1200.0, 1100.0])
    assert r["b_crit"] is None and r["reason"] == "2 batch sizes reach the target (need 3)"
