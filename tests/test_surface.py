"""Issue 23.1: the joint model of the loss surface (lrscale.analysis.surface) on surfaces with a known truth."""

import math

import numpy as np
import pytest
from scipy import stats

from lrscale.analysis import fit, report, surface
from lrscale.analysis.sweep_table import Sweep
from lrscale.analysis.verdict import _ci as verdict_ci
from lrscale.analysis.verdict import edge_changes, verdict

BS = (8, 16, 32, 64, 128, 256, 512)
LOG_LRS = -4.5 + 0.5 * np.arange(7)  # centred on 1e-3


def make_sweep(log_lr_opt, shape, bs=BS, seeds=2, sigma=0.0, seed=0, wall=None) -> Sweep:
    """loss = 1 + B^-1/2 + shape(d, j) + N(0, σ), d = log10 lr − log_lr_opt(B); NaN for d > wall."""
    rng = np.random.default_rng(seed)
    losses = {}
    for j, b in enumerate(bs):
        d = LOG_LRS - log_lr_opt(b)
        clean = 1 + b**-0.5 + shape(d, j)
        loss = clean + rng.normal(0, sigma, (seeds, len(d)))
        if wall is not None:
            loss[:, d > wall] = np.nan
        losses[b] = loss
    return Sweep(list(bs), {b: 10**LOG_LRS for b in bs}, losses, {b: None for b in bs}, "synthetic",
                 list(range(seeds)))


def power_law(beta):
    return lambda b: -3 + beta * math.log10(b / 64)


def bowl(d, j):
    return 0.2 * d**2


def covers(ci, value):
    return ci[0] is not None and ci[1] is not None and ci[0] <= value <= ci[1]


def test_noiseless_power_law_is_recovered_exactly_with_a_point_ci():
    r = surface.fit_surface(make_sweep(power_law(0.5), bowl))
    assert r["beta"] == pytest.approx(0.5, abs=1e-6)
    assert r["ci95"][0] == pytest.approx(0.5, abs=1e-6) and r["ci95"][1] == pytest.approx(0.5, abs=1e-6)
    assert r["lr_opt"]["64"] == pytest.approx(1e-3, rel=1e-5)
    assert r["batch_sizes"] == list(BS) and r["n_runs"] == 2 * 7 * 5  # 5 lrs within one decade of the best


def test_rising_wall_outside_one_shape_is_covered():
    # the review's rising wall: the cubic wall above the optimum steepens with B, runs past it diverge
    def wall(d, j):
        return 0.2 * d**2 + (4 * j / 6) * 0.2 * np.maximum(d, 0) ** 3

    hits, widths = 0, []
    for seed in range(10):
        r = surface.fit_surface(make_sweep(power_law(0.5), wall, sigma=0.01, seed=seed, wall=1.25))
        hits += covers(r["ci95"], 0.5)
        widths.append(r["ci95"][1] - r["ci95"][0])
        assert abs(r["beta"] - 0.5) < 0.1
    assert hits >= 8  # 95% coverage: 8 of 10 has probability 0.99
    assert 0 < np.median(widths) < 0.2


def test_the_ci_is_profile_likelihood_with_an_f_calibration():
    sweep = make_sweep(power_law(0.6), bowl, sigma=0.02, seed=3)
    r = surface.fit_surface(sweep)
    assert covers(r["ci95"], r["beta"])
    # dof: the runs read less m, β, the four walls, a_B and c_B for each of the 7 batch sizes, and σ(B)'s ω
    assert r["dof"] == r["n_runs"] - (2 + 4 + 2 * 7 + 1) == len(surface._points(sweep)[1]) - 21
    assert r["sigma"] == pytest.approx(0.02, rel=0.3)  # the residual scatter is the seed noise
    # at each end the refitted (σ(B)-weighted) RSS has risen by s²·F(1, dof) over the minimum
    model = surface._Model(r["batch_sizes"], surface._points(sweep)[1], r["b_ref"])
    p_hat, _ = surface._best_fit(model)
    assert model.sigma_trend(p_hat)["used"]
    p_hat, rss_min = model.fit(p_hat, {surface.GAMMA: 0.0})
    limit = rss_min + r["sigma"] ** 2 * surface.stats.f.ppf(0.95, 1, r["dof"])
    for end in r["ci95"]:
        assert model.fit(p_hat, {surface.BETA: end, surface.GAMMA: 0.0})[1] == pytest.approx(limit, rel=1e-3)


def test_a_bend_is_detected_and_a_power_law_is_not_called_bent():
    def mccandlish(b):  # lr_opt = lr_max / (1 + B_noise / B), B_noise = 64: slope 0.89 at B = 8, 0.11 at 512
        return -2.7 - math.log10(1 + 64 / b)

    bent = surface.fit_surface(make_sweep(mccandlish, bowl, sigma=0.005, seed=1))
    # the smooth curve departs from the broken line too, so the bend must stand out of those departures (4 dof)
    assert bent["bend"]["bends"] and bent["bend"]["lack_of_fit"]["used"] and bent["bend"]["p_value"] < 0.01
    assert bent["bend"]["slopes"]["lower"] > 0.6 > 0.35 > bent["bend"]["slopes"]["upper"]
    # noiseless: the halves' slopes are the truth's own broken line (least squares through its log lr_opt
    # at the 7 B: 0.74 below B = 64, 0.26 above), up to the joint model's weighting of the batch sizes
    slope = surface.fit_surface(make_sweep(mccandlish, bowl))["bend"]["slopes"]
    assert slope["lower_range"] == [8, 64] and slope["upper_range"] == [64, 512]
    l = np.log10(BS)
    design = np.column_stack([np.ones(7), l, np.maximum(l - np.log10(64), 0)])
    coef = np.linalg.lstsq(design, [mccandlish(b) for b in BS], rcond=None)[0]
    for key, truth in (("lower", coef[1]), ("upper", coef[1] + coef[2])):
        assert slope[key] == pytest.approx(truth, abs=0.015) and covers(slope[key + "_ci95"], truth)
    false_bends = sum(surface.fit_surface(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=s))["bend"]["bends"]
                      for s in range(10))
    assert false_bends <= 3  # a 5% test: 4+ of 10 has probability 0.001


def test_flat_batch_sizes_are_read_pure_noise_holds_no_bowl_and_too_few_give_a_reason():
    sweep = make_sweep(power_law(0.5), bowl, sigma=0.01)
    sweep.losses[512] = 1.0 + np.random.default_rng(0).normal(0, 0.01, sweep.losses[512].shape)  # no bowl at all
    sweep.losses[8][:, :3] = np.nan  # an edge: the per-B optima leave it out, the joint model reads its half bowl
    res = fit.analyse(sweep, bootstrap=0)
    assert [p["batch_size"] for p in res["per_batch"] if not p["included"]] == [8, 512]
    j = res["surface"]
    assert j["batch_sizes"] == [8, 16, 32, 64, 128, 256, 512] and j["skipped_flat"] == [] and j["bowl_p"] < 1e-6
    assert abs(j["curvature"]["512"]) < 0.1 * j["curvature"]["64"] and j["ci95"][0] <= 0.5 <= j["ci95"][1]
    assert res["verdict"].endswith("Every batch size read. The per-B optima also left out B=8 (edge); B=512 (flat).")
    for seeds in (1, 2):  # every batch size flat: the model's own test finds no bowl, so no joint β
        rng = np.random.default_rng(seeds)
        noise = make_sweep(power_law(0.5), bowl, seeds=seeds)
        noise.losses.update({b: 1.0 + rng.normal(0, 0.01, v.shape) for b, v in noise.losses.items()})
        j = surface.fit_surface(noise)
        assert j["beta"] is None and j["bowl_p"] > surface.BOWL_P and j["reason"].startswith("no bowl along its lr_opt curve")
    # one seed of pure noise where the per-B optima still find 3+ vertices: their β (CI ±8) is no answer either
    rng = np.random.default_rng(101)
    noise = make_sweep(power_law(0.5), bowl, seeds=1)
    noise.losses.update({b: 1.0 + rng.normal(0, 0.01, v.shape) for b, v in noise.losses.items()})
    r = fit.analyse(noise, bootstrap=0)
    assert r["beta"] is not None and r["surface"]["bowl_p"] > surface.BOWL_P and r["answer"]["untested"] == "no_bowl"
    assert r["verdict"].startswith("Answer: not decided: the joint model of every run finds no bowl along one")
    assert "\nHypotheses: not tested (no bowl along one lr_opt curve)\n" in r["verdict"]
    few = surface.fit_surface(make_sweep(power_law(0.5), bowl, bs=(8, 64), sigma=0.01))
    assert few["beta"] is None and few["reason"].startswith("2 batch sizes with 3+ lrs within 1 decade")


def test_diverged_runs_beyond_the_window_do_not_break_the_fit():
    sweep = make_sweep(power_law(0.5), bowl, sigma=0.01, wall=0.6)
    r = surface.fit_surface(sweep)
    assert covers(r["ci95"], 0.5) and r["n_runs"] < 2 * 7 * 5  # the NaN runs are not read
    assert r["diverged_left_out"] == sum(int(np.isnan(sweep.losses[b]).sum()) for b in BS) > 0


def test_the_verdict_declines_when_the_two_estimators_disagree(tmp_path):
    r = fit.analyse(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=2), bootstrap=50)
    assert r["answer"]["estimator"] == "surface" and r["answer"]["untested"] is None
    assert "Hypotheses: 0.5 (square-root / Gaussian) is the only hypothesis inside the CI" in r["verdict"]
    r["surface"]["beta"] += 0.3  # a joint β far from the per-B optima's, outside both CIs
    r["surface"]["ci95"] = [r["surface"]["beta"] - 0.02, r["surface"]["beta"] + 0.02]
    r["answer"] = fit._answer(r, [0.5, 0.667, 1.0])
    text = verdict(r, [0.5, 0.667, 1.0])
    assert r["answer"]["untested"] == "estimator_dependent" and "estimator-dependent" in text
    assert r["answer"]["disagreeing"] == ["per_batch", "band"]  # both cross-checks sit near 0.5
    assert "only hypothesis" not in text and "NOT separated" not in text


def test_the_band_alone_disagreeing_is_enough_to_decline():
    r = fit.analyse(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=2), bootstrap=0)
    assert r["answer"]["untested"] is None and r["answer"]["disagreeing"] == []
    assert "near-optimal band" not in r["verdict"] and "per-B optima" not in r["verdict"]  # agreeing: the report's
    rows = dict(line[2:].split(" | ")[:2] for line in report.joint_table(r).split("\n")[2:])
    assert rows["per-B optima (cross-check)"].startswith(f"β = {r['beta']:.3f} ")
    assert rows["bowls along the lr_opt curve (one-sided F test against a flat line at each B)"] == (
        f"p = {r['surface']['bowl_p']:.2g} (no joint model above 0.01) |")  # the row's last cell
    assert "from the joint β, less than the combined CI half-width" in rows["per-B optima (cross-check)"]
    assert "from the joint β, less than the combined CI half-width" in rows["near-optimal band (cross-check)"]
    r["band"]["beta"] += 0.3
    r["band"]["ci95"] = [r["band"]["beta"] - 0.02, r["band"]["beta"] + 0.02]
    r["answer"] = fit._answer(r, [0.5, 0.667, 1.0])
    answer = verdict(r, [0.5, 0.667, 1.0]).split("\n")[0]
    assert r["answer"]["untested"] == "estimator_dependent" and r["answer"]["disagreeing"] == ["band"]
    assert answer.startswith("Answer: not decided (estimator-dependent): the joint model gives β = ")
    assert "; the near-optimal band β = " in answer and "the per-B optima" not in answer


def test_a_noise_trend_with_batch_size_is_modelled_and_a_constant_noise_gets_an_omega_near_zero():
    def falling(b_sigma):  # σ(B) = 0.01·(B/64)^ω with 2 seeds
        rng = np.random.default_rng(b_sigma[1])
        sweep = make_sweep(power_law(0.5), bowl, seed=b_sigma[1])
        for b in BS:
            sweep.losses[b] += rng.normal(0, 0.01 * (b / 64) ** b_sigma[0], sweep.losses[b].shape)
        return surface.fit_surface(sweep)

    trends = [falling((-0.75, s))["sigma_trend"] for s in range(5)]
    assert all(t["used"] for t in trends)
    assert all(t["p_value"] < 0.05 for t in trends)  # a real σ ∝ B^-¾ with 2 seeds: the t test sees it too
    assert np.mean([t["omega"] for t in trends]) == pytest.approx(-0.75, abs=0.25)
    fits = [falling((0.0, s)) for s in range(20)]
    assert all(f["sigma_trend"]["used"] for f in fits)  # modelled whatever its p (TREND_P = 1): a dof to spare
    assert sum(f["sigma_trend"]["p_value"] < 0.05 for f in fits) <= 4  # the trend's t test, still reported, is 5%
    assert abs(np.mean([f["sigma_trend"]["omega"] for f in fits])) < 0.1  # no trend: ω near 0 weighs every B alike
    assert sum(covers(f["ci95"], 0.5) for f in fits) >= 17  # and β's CI still covers (a 95% CI: 17+ of 20 has p = 0.98)
    assert all(f["dof"] == f["n_runs"] - 6 - 2 * 7 - 1 for f in fits)  # ω costs a dof


def test_the_joint_model_answers_where_too_few_per_b_optima_are_bracketed():
    # five of seven batch sizes lost their lrs below the optimum (an edge each): the per-B optima give no β,
    # the joint model reads the half bowls they hold
    sweep = make_sweep(power_law(0.5), bowl, sigma=0.003, seed=5)
    for b in (8, 16, 32, 64, 128):
        sweep.losses[b][:, :3] = np.nan
    r = fit.analyse(sweep, bootstrap=0)
    assert r["beta"] is None and r["n_used"] == 2
    assert r["surface"]["batch_sizes"] == list(BS) and covers(r["surface"]["ci95"], 0.5)
    assert r["answer"]["estimator"] == "surface" and r["answer"]["cross_check"] is False
    answer, hypotheses, caveats = r["verdict"].split("\n")
    assert answer == f"Answer: β = {r['surface']['beta']:.3f} (95% CI {verdict_ci(r['surface']['ci95'])}, from " \
        f"{r['surface']['n_runs']} runs at 7 batch sizes)"
    assert "; no cross-check: only 2 batch size(s) have a per-B optimum and the near-optimal band gives no β" in caveats
    assert hypotheses.startswith("Hypotheses: 0.5 (square-root / Gaussian) is the only hypothesis inside the CI")
    assert caveats.endswith("Every batch size read. The per-B optima also left out B=8 (edge); B=16 (edge); B=32 "
                            "(edge); B=64 (edge); B=128 (edge).")  # the joint answer read their half bowls


def test_per_b_optima_without_a_power_law_are_a_caveat_not_a_gate():
    # the per-B form test took one seed's small-B noise for a bend in 0.17 of one cell's sweeps: it no longer
    # leaves the hypotheses untested when the joint model finds neither a bend nor a bending form
    r = fit.analyse(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=2), bootstrap=0)
    assert not r["surface"]["bend"]["bends"] and r["surface"]["forms"]["preferred"] == "none"
    r["preferred_form"], r["preference_reason"] = "none", "the best form fails its goodness-of-fit test"
    r["answer"] = fit._answer(r, [0.5, 0.667, 1.0])
    answer, hypotheses, caveats = verdict(r, [0.5, 0.667, 1.0]).split("\n")
    assert r["answer"]["untested"] is None and answer.startswith("Answer: β = ")
    assert hypotheses.startswith("Hypotheses: 0.5 (square-root / Gaussian) is the only hypothesis inside the CI")
    assert caveats.startswith("Caveats: the joint model assumes lr_opt ∝ B^β")
    assert ("; the per-B optima fit no form of lr_opt(B) within their errors, which the joint model of every run "
            "does not find") in caveats and "goodness-of-fit" not in caveats  # why: the report's form table


def test_a_bending_form_the_joint_model_prefers_is_not_decided_without_a_bend():
    # the forms bend where the data put the knee; the broken line only at the middle batch size
    r = fit.analyse(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=2), bootstrap=0)
    r["surface"]["forms"]["preferred"] = "mccandlish"
    r["surface"]["forms"]["mccandlish"].update(b_noise=40.0, b_noise_ci95=[20.0, 90.0])
    r["preferred_form"] = "mccandlish"  # the per-B optima agree: no caveat that the joint model disagrees
    r["answer"] = fit._answer(r, [0.5, 0.667, 1.0])
    answer, hypotheses, caveats = verdict(r, [0.5, 0.667, 1.0]).split("\n")
    assert r["answer"]["untested"] == "form"
    assert answer.startswith("Answer: not decided: lr_opt(B) is not a power law: the mccandlish form fits it best, with "
                             "B_noise = 40 [20, 90], though no change of slope at B = 64 stands out")
    assert "an average, not an exponent" in answer and "bends in log-log" not in answer
    assert hypotheses == "Hypotheses: not tested (no constant β)"
    assert "the per-B optima" not in caveats


def test_the_joint_model_declines_when_its_optima_lie_outside_the_grid():
    # every optimum two decades below the grid (a sweep whose grid missed): the half bowls would let the model
    # extrapolate a β (0.55 [0.43, 1.26] here before the guard; −140 [−148, 2541] on a real 32k-sample sweep)
    sweep = make_sweep(lambda b: power_law(0.5)(b) - 2.0, bowl, sigma=0.003, seed=0)
    r = fit.analyse(sweep, bootstrap=0)
    assert r["n_used"] == 0 and r["surface"]["beta"] is None
    assert r["surface"]["reason"].startswith("its lr_opt lies among the lrs it read (within a decade of each B's best) "
                                             "at 0 of 7 batch sizes")
    assert r["answer"]["beta"] is None
    answer = r["verdict"].split("\n")[0]
    assert answer.startswith("Answer: no beta") and "β would extrapolate the loss shape past the grid" in answer
    # at the boundary (a steep β = 2 moves each optimum 0.6 decade per doubling): one batch size inside
    # declines, two answer; the test's own power law (7 inside) is answered
    one = surface.fit_surface(make_sweep(lambda b: power_law(2.0)(b) - 3.0, bowl, sigma=0.001, seed=1))
    assert one["beta"] is None and " at 1 of " in one["reason"]
    two = surface.fit_surface(make_sweep(lambda b: power_law(2.0)(b) - 2.4, bowl, sigma=0.001, seed=1))
    assert two["inside_grid"] == [256, 512] and covers(two["ci95"], 2.0)
    inside = surface.fit_surface(make_sweep(power_law(0.5), bowl, sigma=0.003, seed=0))
    assert inside["inside_grid"] == list(BS) and covers(inside["ci95"], 0.5)


def test_diverged_runs_cap_lr_opt_at_the_stability_edge_and_narrow_the_ci():
    # a bowl that ends in a cliff 0.3 decades above its optimum: no finite run above the optimum
    widths, same = {"capped": [], "absent": []}, []
    for seed in range(10):
        sweep = make_sweep(power_law(0.5), bowl, sigma=0.01, seed=seed, wall=0.3)
        capped = surface.fit_surface(sweep)
        assert set(capped["stability_edge"]) == {str(b) for b in BS}
        for b in BS:  # the cap holds (to the solver's stiffness)
            assert math.log10(capped["lr_opt"][str(b)]) <= math.log10(capped["stability_edge"][str(b)]) + 1e-3
        for b in BS:  # the edge: the lowest lr where every run diverged
            cliff = LOG_LRS[LOG_LRS - power_law(0.5)(b) > 0.3].min()
            assert math.log10(capped["stability_edge"][str(b)]) == pytest.approx(cliff, abs=1e-9)
        # the same runs marked as never run (absent): nothing caps lr_opt; the estimate is the same
        sweep.ran = {b: np.isfinite(sweep.losses[b]) for b in BS}
        absent = surface.fit_surface(sweep)
        assert absent.get("stability_edge", {}) == {}
        if absent["beta"] is not None:  # without the cap the inside-grid guard declines some of them
            same.append(absent["beta"] == pytest.approx(capped["beta"], abs=0.01))
        assert covers(capped["ci95"], 0.5)
        for key, r in (("capped", capped), ("absent", absent)):
            widths[key].append(math.inf if r["beta"] is None or None in r["ci95"] else r["ci95"][1] - r["ci95"][0])
    assert np.median(widths["capped"]) < 0.9 * np.median(widths["absent"])
    assert len(same) >= 5 and all(same)  # where both answer, the cap moved no estimate
    # seed 8's runs put B = 16's bowl bottom past its edge (0.3 decade above the truth's vertex): held
    # there, and the answer is not decided, as for an optimum that is the edge
    held = fit.analyse(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=8, wall=0.3), bootstrap=20)
    assert held["surface"]["lr_opt_at_edge"] == [16] and held["answer"]["untested"] == "stability_edge"


def test_an_optimum_past_the_edge_is_held_there_and_the_verdict_decides_nothing():
    # at the two largest B every run diverges from half a decade below the bowl's vertex: the best
    # trainable lr is the edge, and no power law runs through the vertices and the edges
    def sweep_with_cliff(seed, cut):
        sweep = make_sweep(power_law(0.5), bowl, sigma=0.005, seed=seed)
        for b in (256, 512):
            sweep.losses[b][:, LOG_LRS - power_law(0.5)(b) > cut] = np.nan
        return sweep

    r = surface.fit_surface(sweep_with_cliff(0, -0.5))
    assert 512 in r["lr_opt_at_edge"]
    assert r["lr_opt"]["512"] == pytest.approx(r["stability_edge"]["512"], rel=0.03)
    result = fit.analyse(sweep_with_cliff(0, -0.5), bootstrap=20)
    assert result["answer"]["untested"] == "stability_edge"
    assert result["verdict"].startswith("Answer: not decided: at B = 512 the fitted lr_opt reaches the stability edge")
    assert "Hypotheses: not tested (lr_opt reaches the stability edge)" in result["verdict"]
    # an edge above the vertex holds nothing: the cap is inactive and the hypotheses are tested
    above = fit.analyse(sweep_with_cliff(0, 0.3), bootstrap=20)
    assert above["surface"]["lr_opt_at_edge"] == []
    assert above["answer"]["untested"] is None and covers(above["surface"]["ci95"], 0.5)
    assert above["surface"]["open_edge"] is None  # a finite run above the bottom at every B: nothing unseen


def cut_at(seed, cuts, sigma):
    """The in-family bowl with every run diverged where d > cuts[B] (decades above the vertex)."""
    sweep = make_sweep(power_law(0.5), bowl, sigma=sigma, seed=seed)
    for b, cut in cuts.items():
        sweep.losses[b][:, LOG_LRS - power_law(0.5)(b) > cut] = np.nan
    return sweep


def test_a_bottom_unseen_under_a_diverged_lr_leaves_untested_the_hypotheses_that_depend_on_it():
    # at B = 256 and 512 the lr right above the vertex diverged (d = 0.20, 0.05): the bowl's bottom lies
    # between the highest lr that trained (1e-3) and it, where the data cannot say whether training breaks
    r = fit.analyse(cut_at(0, {256: 0.0, 512: 0.0}, 0.005), bootstrap=20)
    edge, j = r["surface"]["open_edge"], r["surface"]
    assert edge["batch_sizes"] == [256, 512] and edge["highest_lr_read"] == {"256": pytest.approx(1e-3),
                                                                            "512": pytest.approx(1e-3)}
    # the other extreme: lr_opt at 1e-3 there; β moves by the least-squares slope of those moves on log10 B
    x = np.log10(j["batch_sizes"])
    moves = [math.log10(edge["highest_lr_read"][str(b)] / j["lr_opt"][str(b)]) if b in (256, 512) else 0.0
             for b in j["batch_sizes"]]
    assert edge["shift"] == pytest.approx(np.polyfit(x, moves, 1)[0], rel=1e-9) and edge["shift"] < -0.2
    assert edge["shift_range"] == [edge["shift"], 0.0]  # both above the middle: every move lowers β
    assert edge["ci95"] == pytest.approx([j["ci95"][0] + edge["shift"], j["ci95"][1] + edge["shift"]])
    assert covers(j["ci95"], 0.5) and not covers(edge["ci95"], 0.5)  # 0.5 inside one CI, not the other
    assert r["answer"]["untested"] == "open_edge"
    assert r["verdict"].startswith("Answer: not decided: at B = 256, 512 the fitted bowl's bottom lies above the highest")
    assert "the hypotheses inside the CI differ (0.5 against none)" in r["verdict"]
    assert "Hypotheses: not tested (they depend on where training breaks" in r["verdict"]
    # one open B mid-range, with noise enough that moving it keeps the same hypotheses inside: a caveat only
    r = fit.analyse(cut_at(0, {32: 0.1}, 0.02), bootstrap=20)
    assert r["surface"]["open_edge"]["batch_sizes"] == [32] and 0 < r["surface"]["open_edge"]["shift"] < 0.06
    assert r["answer"]["untested"] is None
    assert "0.5 (square-root / Gaussian) is the only hypothesis inside the CI" in r["verdict"]
    assert "at B = 32 the fitted bowl's bottom lies above the highest lr that trained" in r["verdict"].splitlines()[2]
    assert "the same hypotheses inside the CI" in r["verdict"]


def test_open_batch_sizes_on_both_sides_of_the_middle_are_moved_apart_not_together():
    # bottoms unseen at B = 16 and 256: bringing B = 16's lr_opt down raises β, B = 256's lowers it. Moved
    # together they nearly cancel and the CI keeps 0.5; moved one at a time, one of them leaves 0.5 out
    r = fit.analyse(cut_at(0, {16: 0.0, 256: 0.0}, 0.01), bootstrap=20)
    edge, j = r["surface"]["open_edge"], r["surface"]
    assert edge["batch_sizes"] == [16, 256]
    x = np.log10(j["batch_sizes"])
    moves = {b: math.log10(edge["highest_lr_read"][str(b)] / j["lr_opt"][str(b)]) for b in (16, 256)}
    slope = lambda b: np.polyfit(x, [moves[b] if c == b else 0.0 for c in j["batch_sizes"]], 1)[0]  # noqa: E731
    assert edge["shift_range"] == pytest.approx([slope(256), slope(16)], rel=1e-9)
    down, up = edge["shift_range"]
    assert down < -0.05 and up > 0.03
    assert edge["ci95_reach"] == pytest.approx([j["ci95"][0] + down, j["ci95"][1] + up])
    together = [j["ci95"][0] + down + up, j["ci95"][1] + down + up]
    assert covers(j["ci95"], 0.5) and covers(together, 0.5) and not covers([j["ci95"][0] + down, j["ci95"][1] + down], 0.5)
    assert r["answer"]["untested"] == "open_edge"
    assert f"about {j['beta'] + down:.3f} to {j['beta'] + up:.3f} (CIs reaching" in r["verdict"]
    assert "if it breaks right above the highest lr that trained at some of them" in r["verdict"]
    assert "and the CI holds 0.5 for some places training may break and not for others" in r["verdict"]
    rows = report._edge_text(j).split("; ")  # the report's stability-edge row names both
    assert [row.split(":")[0] for row in rows if "bottom unseen" in row] == ["B = 16", "B = 256"]
    # noisier: the CI holds 0.5 over the whole range and nothing else enters, so the answer stands with a caveat
    r = fit.analyse(cut_at(0, {16: 0.0, 256: 0.0}, 0.02), bootstrap=20)
    down, up = r["surface"]["open_edge"]["shift_range"]
    assert down < 0 < up and r["answer"]["untested"] is None
    caveats = r["verdict"].splitlines()[2]
    assert "were training to break right above the highest lr that trained at some of them" in caveats
    assert "the same hypotheses inside the CI" in caveats


def test_a_hypothesis_the_ci_passes_over_between_the_two_extremes_is_undecided_too():
    # β = 0.8, bottoms unseen at B = 256 and 512: the fit's CI holds no hypothesis, nor does the other
    # extreme's (about 0.61), but between them the CI slides over 0.667
    sweep = make_sweep(power_law(0.8), bowl, sigma=0.003, seed=0)
    for b in (256, 512):
        sweep.losses[b][:, LOG_LRS - power_law(0.8)(b) > 0.0] = np.nan
    r = fit.analyse(sweep, bootstrap=20)
    j, edge = r["surface"], r["surface"]["open_edge"]
    hypotheses = [h["beta"] for h in r["hypotheses"]]
    assert not any(covers(j["ci95"], h) or covers(edge["ci95"], h) for h in hypotheses)
    assert edge["ci95_reach"][0] < 2 / 3 < edge["ci95_reach"][1] and edge["shift_range"][1] == 0.0
    assert r["answer"]["untested"] == "open_edge"
    assert "and the CI holds 0.667 for some places training may break and not for others" in r["verdict"]


def test_edge_changes_reads_open_ci_ends_and_an_empty_core():
    hypotheses = [0.5, 2 / 3, 1.0]

    def changes(ci, shift_range):
        down, up = shift_range
        reach = [None if ci[0] is None else ci[0] + down, None if ci[1] is None else ci[1] + up]
        joint = {"ci95": ci, "open_edge": {"shift_range": shift_range, "ci95_reach": reach}}
        return edge_changes(joint, hypotheses)

    assert changes([0.45, 0.55], [-0.2, 0.0]) == [0.5]  # slid down to [0.25, 0.35]: 0.5 leaves
    assert changes([0.6, 0.75], [-0.05, 0.02]) == []  # 0.667 inside all the way: core [0.62, 0.70]
    assert changes([0.62, 0.7], [-0.1, 0.1]) == [2 / 3]  # core [0.72, 0.6] is empty: 0.667 leaves somewhere
    assert changes([0.45, None], [-0.2, 0.0]) == []  # open above: every hypothesis stays inside
    assert changes([None, 0.55], [0.0, 0.15]) == [2 / 3]  # open below: 0.667 enters as the upper end rises
    assert edge_changes({"ci95": [0.45, 0.55], "open_edge": None}, hypotheses) == []


def test_a_bending_lr_opt_gets_its_form_and_b_noise_from_every_run():
    def mccandlish(b):  # lr_max / (1 + B_noise / B), B_noise = 32
        return -2.7 - math.log10(1 + 32 / b)

    def surge(b):  # lr_opt peaks at B_noise = 128
        return -3 - math.log10(0.5 * (math.sqrt(128 / b) + math.sqrt(b / 128)))

    for truth, form, b_noise in ((mccandlish, "mccandlish", 32), (surge, "surge", 128)):
        noiseless = surface.fit_surface(make_sweep(truth, bowl))["forms"]
        assert noiseless["preferred"] == form and noiseless[form]["b_noise"] == pytest.approx(b_noise, rel=1e-3)
        hits = 0
        for seed in range(5):
            forms = surface.fit_surface(make_sweep(truth, bowl, sigma=0.01, seed=seed))["forms"]
            assert forms["preferred"] == form and forms[form]["rss"] < forms["power_law"]["rss"]
            hits += covers(forms[form]["b_noise_ci95"], b_noise)
        assert hits >= 4  # a 95% CI: 3 or fewer of 5 has probability 0.02
    r = fit.analyse(make_sweep(mccandlish, bowl, sigma=0.01, seed=0), bootstrap=20)
    assert r["verdict"].startswith("Answer: not decided: lr_opt bends in log-log")
    assert "the mccandlish form fits it best, with B_noise = " in r["verdict"]
    no_bend = surface.fit_surface(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=0))["forms"]
    assert no_bend["preferred"] == "none"  # fitted, but neither beats the power law: their CIs are not profiled
    assert no_bend["mccandlish"]["b_noise_ci95"] is None and no_bend["surge"]["lack_of_fit"] is None


def test_a_real_sweep_fitted_from_several_starts_finds_its_bowls():
    # the budget demo's fixed-steps sweep (lrs 3e-5..0.3, 512 steps; tests/data): fitted from one start (a line
    # through each B's best lr, pulled by its flat B = 64), the power law first ran lr_opt past 1e308 at a batch
    # size (an OverflowError before the MAX_DECADES guard), then settled at β = 2.5 with B = 8 and 16 on humps
    # and no bowl along it (p = 0.91, 18x the RSS of the best start's fit): the per-B optima's β was no answer
    from pathlib import Path

    from lrscale.analysis.sweep_table import read_table

    r = fit.analyse(read_table(Path(__file__).parent / "data" / "budget_demo_steps.csv"), bootstrap=0)
    j = r["surface"]
    assert j["beta"] is not None and j["bowl_p"] < 1e-12 and all(j["curvature"][str(b)] > 0 for b in (8, 16))
    answer, hypotheses, caveats = r["verdict"].split("\n")
    # the joint model finds a bend where the per-B optima fit no form: not decided either way (issue 23.4)
    assert answer.startswith("Answer: not decided: lr_opt bends in log-log, no single β: slope 0.21 [-0.59, 1.38] "
                             "over B = 8–64, 2.49 [0.29, 4.69] over B = 64–256")
    assert hypotheses == "Hypotheses: not tested (no constant β)"
    assert caveats.startswith("Caveats: the joint model assumes a broken line in log-log for lr_opt")


def test_profile_ci_refits_from_the_nearest_solved_value_and_the_estimate(monkeypatch):
    """McCandlish's log10 B_noise profile on the budget demo's fixed-steps sweep: refitted from the estimate's
    parameters alone (the profile before 2026-12-07) or by continuation alone, values settle in poorer minima
    and end the CI early; from both, it reaches further than either. And the power law's β = 1.2 there, refitted
    from the estimate, lands at 10× the RSS that continuation finds (outside the CI, which ends at 1.12)."""
    from pathlib import Path
    from lrscale.analysis.names import MCCANDLISH, POWER_LAW
    from lrscale.analysis.sweep_table import read_table

    calls, real = [], surface._profile_ci
    monkeypatch.setattr(surface, "_profile_ci", lambda model, *a: calls.append((model, model.form, a)) or real(model, *a))
    fit.analyse(read_table(Path(__file__).parent / "data" / "budget_demo_steps.csv"), bootstrap=0)
    model, model.form, (p_hat, rss_min, s2, f95, se) = next(c for c in calls if c[1] == MCCANDLISH)
    limit = rss_min + s2 * f95

    def upper_end(continued):
        solved = {float(p_hat[surface.BETA]): p_hat}

        def prof(b):
            start = solved[min(solved, key=lambda v: abs(v - b))] if continued else p_hat
            p, rss = model.fit(start, {surface.BETA: b, surface.GAMMA: 0.0})
            solved[b] = p
            return rss - limit

        return surface._crossing(prof, p_hat[surface.BETA], max(se, 0.01), 1)

    both = real(model, p_hat, rss_min, s2, f95, se)[1]
    assert both > upper_end(False) + 0.01 and both > upper_end(True) + 0.01  # 1.624 against 1.585 and 1.571
    model.form, p = POWER_LAW, next(c for c in calls if c[1] == POWER_LAW)[2][0]
    p_pl = p
    for b in np.linspace(p_pl[surface.BETA], 1.2, 9):  # β continued from the estimate in steps of 0.09
        p, continued_rss = model.fit(p, {surface.BETA: b, surface.GAMMA: 0.0})
    assert model.fit(p_pl, {surface.BETA: 1.2, surface.GAMMA: 0.0})[1] > 5 * continued_rss  # 0.111 against 0.011


def test_no_bowl_undercuts_the_per_b_beta_only_where_the_bowl_test_refused():
    r = fit.analyse(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=2), bootstrap=0)
    assert r["beta"] is not None
    r["surface"] = {"beta": None, "reason": "its lr_opt runs past 1e±300 at some batch size"}  # another refusal
    assert fit._answer(r, [0.5])["untested"] is None
    r["surface"] = {"beta": None, "bowl_p": 0.5, "reason": "no bowl along its lr_opt curve"}
    r["band"] = {**r["band"], "beta": r["beta"] + 10.0, "ci95": [r["beta"] + 9.9, r["beta"] + 10.1]}  # disagrees
    assert fit._answer(r, [0.5])["untested"] == "no_bowl"  # before the band's disagreement
    r["beta"] = None  # no per-B β: nothing to undercut ("no beta")
    assert fit._answer(r, [0.5])["untested"] is None


def test_humps_are_no_bowl():
    # every batch size's loss peaks at its "lr_opt" (an inverted bowl): two-sided, the F test took the humps for
    # bowls (p = 7e-5) and answered β = −2.6 [open, open]
    j = surface.fit_surface(make_sweep(power_law(0.5), lambda d, j: -0.02 * d**2, sigma=0.01))
    assert j["beta"] is None and j["bowl_p"] > surface.BOWL_P and j["reason"].startswith("no bowl along its lr_opt curve")


def test_an_lr_where_only_some_seeds_diverged_is_the_edge_and_its_survivors_are_left_out():
    # at the lr ~half a decade above each vertex seed 1 diverged and seed 0 survived (a calm run: lower loss
    # than that lr's runs as a whole); every lr above it ran clean in both seeds
    sweep, full = (make_sweep(power_law(0.5), bowl, sigma=0.01, seed=3) for _ in range(2))
    edges = {}
    for b in BS:
        j = int(np.argmin(np.abs(LOG_LRS - power_law(0.5)(b) - 0.5)))
        assert LOG_LRS[j] > power_law(0.5)(b)
        sweep.losses[b][1, j] = np.nan
        sweep.losses[b][0, j] -= 0.05
        edges[b] = LOG_LRS[j]
    r, r_full = surface.fit_surface(sweep), surface.fit_surface(full)
    assert {int(b): math.log10(v) for b, v in r["stability_edge"].items()} == pytest.approx(edges, abs=1e-9)
    assert r["diverged_left_out"] == len(BS)
    # read: nothing at or past the edge (neither the survivor nor the clean lrs above it)
    best = {b: LOG_LRS[int(np.argmin(full.losses[b].mean(axis=0)))] for b in BS}
    in_window_past_edge = sum(2 * int(((LOG_LRS >= edges[b]) & (abs(LOG_LRS - best[b]) <= surface.WINDOW_DECADES
                                                               + 1e-9)).sum()) for b in BS)
    assert in_window_past_edge > 2 * len(BS) and r["n_runs"] == r_full["n_runs"] - in_window_past_edge
    assert covers(r["ci95"], 0.5)
    # and counted: every finite run at or past the edge (both seeds at each lr, less the one that diverged)
    assert r["survivors_left_out"] == sum(2 * int((LOG_LRS >= edges[b]).sum()) - 1 for b in BS)
    assert r_full["survivors_left_out"] == 0 and r_full["diverged_left_out"] == 0
    from lrscale.analysis.verdict import _left_out_clause

    assert _left_out_clause(r) == (f"; {len(BS)} diverged run(s) are not read as losses, only as a cap on lr_opt "
                                   f"below the lowest lr where a run diverged, nor are the {r['survivors_left_out']} "
                                   "run(s) that did not diverge at or past that lr")
    assert _left_out_clause(r_full) == ""


def test_an_unseen_side_widens_that_batch_sizes_own_ci_at_the_normal_quantile():
    from lrscale.analysis import optima

    x = np.log10(10**LOG_LRS)
    loss = 0.2 * (x + 3.0) ** 2 + 0.4 * np.maximum(x + 3.0, 0) ** 3
    seen = optima.locate(10**LOG_LRS, loss, sd=np.full(7, 0.01))
    assert not seen["side_unseen"] and optima.unseen_floor(seen) == 0.0
    cut = loss.copy()
    cut[5:] = np.nan  # the point two steps above the best diverged: one point on that side within 2 steps
    unseen = optima.locate(10**LOG_LRS, cut, sd=np.full(7, 0.01))
    assert unseen["side_unseen"] and optima.unseen_floor(unseen) == pytest.approx(0.5 / math.sqrt(12))
    lo, hi = optima.ci95(1e-3, 0.05, 10, unseen=0.2)
    half = math.log10(hi / 1e-3)
    assert half == pytest.approx(math.hypot(stats_t975(10) * 0.05, 1.959964 * 0.2)) and lo == pytest.approx(1e-3 / 10**half)
    argmin = optima.locate(10**LOG_LRS, cut, estimator="argmin", sd=np.full(7, 0.01))
    assert optima.unseen_floor(argmin) == 0.0  # its SE holds the step's quantisation already


def stats_t975(dof):
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def test_a_modelled_lr_opt_past_1e300_is_no_answer(monkeypatch):
    sweep = make_sweep(power_law(0.5), bowl, sigma=0.01, seed=1)
    inner = surface._Model.log_lr_opt
    monkeypatch.setattr(surface._Model, "log_lr_opt", lambda self, p, b: 400.0 if b == 512 else inner(self, p, b))
    r = surface.fit_surface(sweep)
    assert r["beta"] is None and r["reason"].startswith("its lr_opt runs past 1e±300 at some batch size")


def _scattered_power_law(beta, sd_decades, seed):
    """lr_opt(B) on a power law, each batch size shifted off it by its own N(0, sd) in log10: a curve
    that one power law does not hold to the seeds' precision."""
    shift = dict(zip(BS, np.random.default_rng(100 + seed).normal(0, sd_decades, len(BS))))
    return lambda b: power_law(beta)(b) + shift[b]


def test_lr_opt_departing_from_the_line_sizes_the_ci_by_the_departures():
    # each B's lr_opt 0.08 decade off the line at random, seeds scattering 0.003: the seeds alone would pin
    # β to the line through those shifts; the departures' own scatter (t, 5 dof) holds the β they were drawn around
    used, hits, widths, bends = 0, 0, [], 0
    for seed in range(10):
        r = surface.fit_surface(make_sweep(_scattered_power_law(0.5, 0.08, seed), bowl, sigma=0.003, seed=seed))
        lof = r["lack_of_fit"]
        used += lof["used"]
        bends += r["bend"]["bends"]  # a bend must stand out of the departures too (the seeds alone: 5 of 10)
        assert lof["dof"] == 5 and lof["pure_dof"] == r["dof"] - 5 and lof["vertices"] == list(BS) and lof["widened"]
        hits += covers(r["ci95"], 0.5)
        widths.append((r["ci95"][1] - r["ci95"][0]) / 2)
    assert used == 10 and hits >= 8 and bends <= 2
    # about the two-stage t-CI through the true vertices (0.11 at seed 0, t on 5 dof), far above the seeds' 0.01
    assert 0.08 < np.median(widths) < 0.25
    on_line = [surface.fit_surface(make_sweep(power_law(0.5), bowl, sigma=0.003, seed=s))["lack_of_fit"]["used"]
               for s in range(10)]
    assert sum(on_line) <= 2  # a false lack of fit 5% of the time
    noiseless = surface.fit_surface(make_sweep(power_law(0.5), bowl))["lack_of_fit"]
    assert noiseless["f"] == 0.0 and not noiseless["used"]


def test_a_free_lr_opt_that_runs_off_the_grid_does_not_size_the_departures():
    # B = 8's loss falls straight down the lrs it ran (no bowl): freed from the line, its lr_opt is held by
    # nothing and runs off; the departures are read from the batch sizes whose own lr_opt is bracketed
    def shape(d, j):
        return -0.1 * d if j == 0 else 0.2 * d**2

    r = surface.fit_surface(make_sweep(_scattered_power_law(0.5, 0.08, 3), shape, sigma=0.003, seed=3))
    lof = r["lack_of_fit"]
    assert lof["used"] and lof["vertices"] == list(BS[1:]) and lof["vertex_dof"] == 4
    assert lof["s2"] < 0.1 and covers(r["ci95"], 0.5) and r["ci95"][1] - r["ci95"][0] < 1.0


def test_a_batch_size_set_apart_at_the_end_widens_the_slopes_by_the_jackknife():
    # lr_opt a broken line (slope 0.8 to B = 64, 0.4 above) with B = 512's own lr_opt 0.08 decade above it,
    # seeds scattering 0.003: at the end of a 4-B half that B pulls the line toward itself, and leaving each
    # B out in turn shows it (the jackknife's upper half-width, 0.16–0.19 here, against 0.06–0.07 below the
    # knot); the answer's upper CI holds the slope through the other batch sizes (0.4) with room to spare
    def kinked(b, apart=0.08):
        return -3 + 0.8 * math.log10(min(b, 64) / 64) + 0.4 * math.log10(max(b, 64) / 64) + apart * (b == 512)

    for seed in range(3):
        slopes = surface.fit_surface(make_sweep(kinked, bowl, sigma=0.003, seed=seed))["bend"]["slopes"]
        jk = slopes["jackknife"]
        assert jk["dof"] == 6 and jk["widened"] and jk["upper_half_width"] > 0.13 > 0.1 > jk["lower_half_width"]
        assert slopes["upper_ci95"][0] < 0.35 and covers(slopes["upper_ci95"], 0.4)
        for key in ("lower", "upper"):  # the answer's CI: the model's, widened to the jackknife's t-CI
            model, half = jk["ci95_model"][key], jk[key + "_half_width"]
            assert slopes[key + "_ci95"] == [min(model[0], slopes[key] - half), max(model[1], slopes[key] + half)]
        assert not any(jk["smooth_departure"].values())  # a broken line: itself the closer curve, nothing moved
        on_line = surface.fit_surface(make_sweep(lambda b: kinked(b, 0.0), bowl, sigma=0.003, seed=seed))["bend"]
        assert on_line["slopes"]["jackknife"]["upper_half_width"] < 0.05  # no B apart: little to widen by
    straight = surface.fit_surface(make_sweep(power_law(0.5), bowl, sigma=0.01, seed=0))["bend"]
    assert not straight["bends"] and straight["slopes"]["jackknife"] is None  # computed where the slopes answer

    class FourBatchSizes:
        used = [8, 64, 512, 4096]

    assert surface._jackknife(FourBatchSizes, None, {}) is None  # a half with no batch size beyond the knot


def test_a_smooth_lr_opt_is_read_about_a_quadratic_not_as_error():
    # lr_opt the McCandlish curve (B_noise = 64), seeds scattering 0.003: it departs from its own least-squares
    # broken line (slopes 0.740 and 0.260) by ±0.02–0.03 decade, which the lack of fit sees (s2 ≈ 8e-4), yet
    # the truth's broken line shares that pattern. Read about a quadratic in log B (surface._smooth) the
    # departures' mean square is under 1/20 of it and the jackknife refits run with the pattern moved out, so
    # the CIs hold the truth's slopes at ±0.04 (they were ±0.1 and more when the pattern was read as error)
    def mccandlish(b):
        return math.log10(3e-3 / (1 + 64 / b))

    for seed in range(3):
        bend = surface.fit_surface(make_sweep(mccandlish, bowl, sigma=0.003, seed=seed))["bend"]
        slopes, lof, jk = bend["slopes"], bend["lack_of_fit"], bend["slopes"]["jackknife"]
        assert bend["bends"] and lof["used"] and lof["s2_smooth"] < lof["s2"] / 20
        assert np.ptp(list(jk["smooth_departure"].values())) > 0.04
        for key, truth in (("lower", 0.7403), ("upper", 0.2597)):
            assert covers(slopes[key + "_ci95"], truth) and slopes[key + "_ci95"][1] - slopes[key] < 0.04


def test_a_batch_size_set_apart_from_a_smooth_curve_still_widens_its_slope():
    # the McCandlish curve with B = 512's own lr_opt 0.08 decade above it: the quadratic follows that B only in
    # part, so the refits without it still move the upper slope (half-width > 0.1, against ~0.02 on the curve)
    def mccandlish(b):
        return math.log10(3e-3 / (1 + 64 / b)) + 0.08 * (b == 512)

    for seed in range(2):
        slopes = surface.fit_surface(make_sweep(mccandlish, bowl, sigma=0.003, seed=seed))["bend"]["slopes"]
        assert slopes["jackknife"]["upper_half_width"] > 0.1 and covers(slopes["upper_ci95"], 0.2597)


def test_shifting_each_batch_size_moves_its_runs_and_its_stability_edge():
    sweep = make_sweep(power_law(0.5), bowl, sigma=0.003, wall=0.6)  # runs 0.6 decade past the optimum diverge
    read = surface._points(sweep)
    model = surface._Model(read.used, read.pts, 64.0, read.edges)
    p, _ = surface._best_fit(model)
    by = 0.1 * np.log10(np.array(read.used) / 64.0)  # β up by 0.1, the intercept at B_ref kept
    moved = model.shifted(by)
    q, _ = moved.fit(p, {surface.GAMMA: 0.0})
    assert q[surface.BETA] == pytest.approx(p[surface.BETA] + 0.1, abs=1e-4)
    assert q[surface.M] == pytest.approx(p[surface.M], abs=1e-4)
    assert model.edges and all(moved.edges[b] == pytest.approx(e + by[read.used.index(b)]) for b, e in model.edges.items())


def test_an_open_edge_behind_a_stability_edge_is_a_caveat_naming_other_hypotheses():
    # B = 512's lr_opt is held at its stability edge (that decides: not decided), and at B = 8 and 16 the bottom
    # is unseen under a diverged lr, moving 0.667 in or out of the CI: the caveat says so instead of the answer
    r = fit.analyse(cut_at(0, {8: 0.0, 16: 0.0, 512: -0.5}, 0.005), bootstrap=20)
    j = r["surface"]
    assert r["answer"]["untested"] == "stability_edge" and j["lr_opt_at_edge"] == [512]
    assert j["open_edge"]["batch_sizes"] == [8, 16] and edge_changes(j, [0.5, 0.667, 1.0]) == [0.667]
    caveats = r["verdict"].splitlines()[2]
    assert caveats.startswith("Caveats:") and "at B = 8, 16 the fitted bowl's bottom lies above the highest lr" in caveats
    assert "(the line through the optima moved, not a refit), other hypotheses inside the CI" in caveats


def test_a_slopes_ci_given_a_false_bend_covers_and_the_wald_ci_does_not():
    # A power law (γ = 0) read through the bend test: the slope below the knot and γ̂ are correlated (ρ = −0.8,
    # as a broken line's are), and only the draws whose γ̂ passes the 5% test are answered with slopes.
    rng = np.random.default_rng(3)
    se, se_g, rho, dof = 0.1, 0.12, -0.8, 60
    t95, cut = stats.t.ppf(0.975, dof), stats.t.ppf(1 - surface.BEND_P / 2, dof)
    wald_at = lambda v: [v - t95 * se, v + t95 * se]  # noqa: E731
    cov = np.array([[se**2, rho * se * se_g], [rho * se * se_g, se_g**2]])
    draws = rng.multivariate_normal([0.5, 0.0], cov, size=40000)
    picked = draws[np.abs(draws[:, 1]) > cut * se_g][:800]
    assert len(picked) == 800
    wald = np.mean([abs(v - 0.5) <= t95 * se for v, _ in picked])
    cis = [surface._selective_ci(v, se, rho * se * se_g, g, abs(g) / se_g, dof, wald_at(v)) for v, g in picked]  # t = γ̂/SE
    given = np.mean([lo <= 0.5 <= hi for lo, hi in cis])
    assert wald < 0.85  # the selection's bias: the answered slopes fell far by chance
    assert 0.94 <= given <= 0.985  # 800 draws: binomial SE 0.006; 0.972 in 4,000 (stretched to the estimate)
    # where the selection removes nothing it is the Wald t-CI: γ̂ uncorrelated with the slope, or a bend far past
    # its cut (the truncated normal's limit, not the early return)
    assert surface._selective_ci(0.5, se, 0.0, 0.4, 0.4 / se_g, dof, wald_at(0.5)) == pytest.approx(wald_at(0.5))
    assert surface._selective_ci(0.5, se, rho * se * se_g, 0.4, 1e6, dof, wald_at(0.5)) == pytest.approx(wald_at(0.5), abs=1e-4)
    # the upper slope: positively correlated with γ̂ (ρ = +0.5), γ̂ of either sign
    cov[0, 1] = cov[1, 0] = 0.5 * se * se_g
    draws = rng.multivariate_normal([0.3, 0.0], cov, size=40000)
    picked = draws[np.abs(draws[:, 1]) > cut * se_g][:800]
    cis = [surface._selective_ci(v, se, 0.5 * se * se_g, g, abs(g) / se_g, dof, wald_at(v)) for v, g in picked]
    assert 0.94 <= np.mean([lo <= 0.3 <= hi for lo, hi in cis]) <= 0.985  # 0.971 in 4,000
    assert all(lo <= v <= hi and lo < hi for (lo, hi), (v, _) in zip(cis, picked))  # no slope outside its own CI


def test_a_slopes_ci_end_past_the_search_is_open_not_wald():
    # A bend right at its cut (t 1e-8 over it) whose slope barely correlates with γ̂ (b = 1e-4): the slopes the
    # test rejects span ~8,000 decades, and the CI's far end lies past the search's 4,000 SDs: open (None),
    # never the Wald CI (the narrow choice there), the near end stretched to the estimate; mirrored with γ̂ < 0
    se, dof = 0.1, 60
    t95, t_cut = stats.t.ppf(0.975, dof), stats.t.isf(surface.BEND_P / 2, dof)
    wald = [0.5 - t95 * se, 0.5 + t95 * se]
    below = surface._selective_ci(0.5, se, 1e-6, 0.4, t_cut * (1 + 1e-8), dof, wald)
    above = surface._selective_ci(0.5, se, 1e-6, -0.4, t_cut * (1 + 1e-8), dof, wald)
    assert below == [None, 0.5] and above == [0.5, None]
    assert verdict_ci(below) == "[open, 0.500]"
    # 100x farther from the cut the same end is found, far out: the None above is the search's reach, not a fault
    lo, hi = surface._selective_ci(0.5, se, 1e-6, 0.4, t_cut * (1 + 1e-6), dof, wald)
    assert lo is not None and lo < 0.5 - 50 * se and 0.5 <= hi < 0.5 + t95 * se
