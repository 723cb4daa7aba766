"""The verdict: three lines built only from the intervals, so they cannot claim more than they hold.

  Answer      β with one CI: the joint model's (lrscale.analysis.surface), with the per-B optima's β
              and the near-optimal band's (lrscale.analysis.band) as its cross-checks. "not decided"
              instead, with the reason, when something undercuts a single β: lr_opt falls with B, or
              bends (the joint model's bend test or its form comparison), or a cross-check disagrees with
              the joint β beyond their combined CI (estimator-dependent). Without a
              joint fit (too few runs near the optima) the per-B optima's t and bootstrap CIs answer.
              The cross-checks' βs are in the report's joint table: the Answer names them only when one
              disagrees, the Caveats when none could check the answer.
  Hypotheses  one clause: the only hypothesis inside the CI / not separated / between two / outside
              all, or not tested (and why). Never "consistent with": a CI can only rule out.
  Caveats     the assumption the answer rests on first, then an unchecked estimator, each B's lr_opt
              off the curve, an unseen bowl bottom, the per-B optima's own form, budget, clipping, and
              last what the answer did not read and what the per-B optima also left out.
χ², F, p, dof and method names are in the report's tables, not here (the noise share of the per-B
error is not measured by any benchmark, so no line states it: issue 23.4).
"""

import math

from . import budget
from .forms import close_second
from .names import GRAD_CLIPPED, MCCANDLISH, NO_FORM, POWER_LAW, SURGE, UNDECIDED
from .surface import MIN_POINTS_PER_B, WINDOW_DECADES, slide

HYPOTHESIS_NAMES = {0.5: "square-root / Gaussian", 0.667: "Laplace", 1.0: "linear"}
FORM_NAMES = {POWER_LAW: "power law C·B^β", MCCANDLISH: "McCandlish lr_max/(1 + B_noise/B)",
              SURGE: "surge lr_peak/(½(√(B_noise/B) + √(B/B_noise)))"}


def _ci(ci) -> str:
    return interval(ci, ".3f")


def interval(ci, spec=".3g") -> str:
    """`[lo, hi]`, an end that runs off the fit's range written `open`; `—` for no interval."""
    if ci is None:
        return "—"
    return "[" + ", ".join("open" if v is None else format(v, spec) for v in ci) + "]"


UNBOUNDED_DECADES = 1.0  # a per-B lr_opt CI end this far beyond the lrs run at that B says nothing: unbounded


def lr_ci_ends(ci, lrs) -> tuple:
    """A per-B lr_opt CI's ends, None where the end lies more than UNBOUNDED_DECADES beyond the lrs run
    (a flat or edge optimum's CI can reach 1e-16..1e+10: the data bound nothing there)."""
    if not ci:
        return None, None
    lo, hi = ci
    low, high = min(lrs) / 10**UNBOUNDED_DECADES, max(lrs) * 10**UNBOUNDED_DECADES
    return (None if lo is None or lo < low else lo), (None if hi is None or hi > high else hi)


def lr_interval(ci, lrs, spec=".3g") -> str:
    """A per-B lr_opt CI as text: `[lo, hi]`, `> lo` or `< hi` with an unbounded end, `unbounded`."""
    if not ci:
        return "—"
    lo, hi = lr_ci_ends(ci, lrs)
    if lo is None and hi is None:
        return "unbounded"
    if hi is None:
        return f"> {lo:{spec}}"
    return f"< {hi:{spec}}" if lo is None else f"[{lo:{spec}}, {hi:{spec}}]"


def bn_text(f) -> str:
    """A form's B_noise with its CI, or that it was not placed (the joint model's: far beyond the B run)."""
    if f["b_noise"] is None:
        return "B_noise not placed: beyond the batch sizes run"
    if f.get("b_noise_ci95") is None:  # the joint model profiles it only where lr_opt bends or the form is preferred
        return f"B_noise = {f['b_noise']:.3g} (no CI: no bend, no form preferred)"
    return f"B_noise = {f['b_noise']:.3g} {interval(f['b_noise_ci95'])}"


def plausible_bend(r) -> str | None:
    """A bending form that fits at least somewhat better than the power law with a B_noise pinned on
    both sides (not a power law in disguise), though not enough to be preferred; else None."""
    if not r.get("forms"):
        return None
    pl = r["forms"][POWER_LAW]["chi2"]
    for name in (MCCANDLISH, SURGE):
        f = r["forms"][name]
        if f["chi2"] <= pl - 1 and None not in f["b_noise_ci95"]:
            return f"{name} with {bn_text(f)} fits somewhat better"  # its χ² is in the form table
    return None


def held_clause(r, held, ci, word, beta_hat, width, hypotheses, disagree=None) -> str:
    """What an interval says about the hypotheses: `held` those it holds, `ci` its ends (None: open),
    `word` "CI" or "CIs" (one interval or the union of two), `width` its half-width as printed;
    `disagree`: a clause that replaces between/inconsistent when the two CIs leave a hypothesis in a gap."""
    name = lambda h: f"{h['beta']} ({h['name']})"  # noqa: E731
    verb = "s" if word == "CI" else ""
    if len(held) == 1:
        bend = plausible_bend(r)
        text = f"{name(held[0])} is the only hypothesis inside the {word} (β̂ = {beta_hat:.3f})"
        return text + (f", but a bend is not excluded ({bend}): no single hypothesis is confirmed" if bend else "")
    if len(held) > 1:
        ordered = sorted(h["beta"] for h in held)
        gap = min(q - p for p, q in zip(ordered, ordered[1:])) / 2
        return (f"NOT separated: the {word} hold{verb} {' and '.join(name(h) for h in held)}; separating them "
                f"needs a CI half-width below {gap:.3f} (now {width})")
    if disagree:
        return disagree
    lo = -math.inf if ci[0] is None else ci[0]
    hi = math.inf if ci[1] is None else ci[1]
    below = sorted((h for h in r["hypotheses"] if h["beta"] < lo), key=lambda h: h["beta"])
    above = sorted((h for h in r["hypotheses"] if h["beta"] > hi), key=lambda h: h["beta"])
    if below and above:
        return (f"between {name(below[-1])} and {name(above[0])}: the {word} exclude{verb} both (and every "
                "hypothesis tested)")
    return ("inconsistent with every hypothesis tested (" + ", ".join(str(h) for h in hypotheses) + f"): β is "
            f"{'above' if below else 'below'} all of them")


def hypothesis_sentence(r, hypotheses) -> str:
    """What the per-B optima's β CIs say about the hypotheses: one counts as held if either CI holds it."""
    held = [h for h in r["hypotheses"] if h["in_ci95_t"] or h["in_ci95_bootstrap"]]
    lo = min(r["ci95_t"][0], (r["ci95_bootstrap"] or r["ci95_t"])[0])
    hi = max(r["ci95_t"][1], (r["ci95_bootstrap"] or r["ci95_t"])[1])
    gap = [h for h in r["hypotheses"] if lo <= h["beta"] <= hi]  # between two CIs that do not overlap
    names = " and ".join(f"{h['beta']} ({h['name']})" for h in gap)
    disagree = gap and (f"the t and bootstrap CIs disagree ({_ci(r['ci95_t'])} vs {_ci(r['ci95_bootstrap'])}) and "
                        f"{names} lies between them: no hypothesis is confirmed or excluded")
    return held_clause(r, held, [lo, hi], "CIs", r["beta"], f"{(r['ci95_t'][1] - r['ci95_t'][0]) / 2:.3f}", hypotheses,
                       disagree=disagree)


def exclusion_text(r) -> str:
    """The batch sizes the answer did not read, then those the per-B optima left out, with why. The joint
    model reads an edge batch size's half bowl, so for its answer the per-B exclusions are a cross-check's,
    said as such; it reads a flat one too (its own test is whether the losses hold a bowl at all)."""
    parts = [f"B={e['batch_size']} ({', '.join(e['reasons'])})" for e in r["excluded"]]
    if r["answer"]["estimator"] != "surface":
        return "Excluded: " + "; ".join(parts) + "." if parts else "No batch size excluded."
    j = r["surface"]
    few = f"fewer than {MIN_POINTS_PER_B} lrs that trained within {WINDOW_DECADES:g} decade of the best"
    unread = [f"B={p['batch_size']} ({few})" for p in r["per_batch"] if p["batch_size"] not in j["batch_sizes"]]
    text = f"Not read: {'; '.join(unread)}." if unread else "Every batch size read."
    others = [e for e, x in zip(parts, r["excluded"]) if x["batch_size"] in j["batch_sizes"]]
    return text + (" The per-B optima also left out " + "; ".join(others) + "." if others else "")


def slope_text(j) -> str:
    """The bent joint fit's slopes with their CIs, over the lower and the upper half of the B used."""
    s = j["bend"]["slopes"]
    return (f"slope {s['lower']:.2f} {interval(s['lower_ci95'], '.2f')} over B = {s['lower_range'][0]}–"
            f"{s['lower_range'][1]}, {s['upper']:.2f} {interval(s['upper_ci95'], '.2f')} over B = "
            f"{s['upper_range'][0]}–{s['upper_range'][1]}")


def _per_b(r) -> str:
    return f"β = {r['beta']:.3f} {_ci(r['ci95_t'])}"


def slopes_answer(r) -> bool:
    """The answer is the bent joint fit's two slopes: lr_opt bends (joint bend test; the joint model's
    form comparison may have said so first)."""
    a = r["answer"]
    return a["estimator"] == "surface" and a["untested"] in ("bend", "form") and r["surface"]["bend"]["bends"]


def answered_beta(r) -> tuple | None:
    """(β, its CI) where the Answer commits to one β, None where it says "not decided" or has no β: the one
    decision answer_line and every summary over several fits (fit --by, horizons) read."""
    a = r["answer"]
    if a["beta"] is None or a.get("untested") is not None:
        return None
    if a["estimator"] != "surface" and r["preferred_form"] != POWER_LAW:
        return None
    return a["beta"], a["ci95"]


def answer_line(r) -> str:
    """β with one CI where answered_beta commits to one, else "not decided" with the reason that undercuts a
    single β first."""
    a, j = r["answer"], r["surface"]
    if answered_beta(r) is not None:
        if a["estimator"] != "surface":  # the hypotheses read both CIs
            return f"Answer: β = {r['beta']:.3f} (95% CI {_ci(r['ci95_t'])}, bootstrap {_ci(r['ci95_bootstrap'])})"
        return (f"Answer: β = {a['beta']:.3f} (95% CI {_ci(a['ci95'])}, from {j['n_runs']} runs at "
                f"{len(j['batch_sizes'])} batch sizes)")
    if a["estimator"] != "surface":
        return _per_b_declined(r)
    why = a["untested"]
    if why == "estimator_dependent":
        others = "; ".join(_cross_check_text(r, name) for name in a["disagreeing"])
        return (f"Answer: not decided (estimator-dependent): the joint model gives β = {a['beta']:.3f} "
                f"{_ci(a['ci95'])}; {others}")
    if why == "non_monotonic":
        d = r["non_monotonic"][0]
        return (f"Answer: not decided: lr_opt is non-monotonic in B, it falls from B = {d['from_batch_size']} to "
                f"B = {d['to_batch_size']} beyond both CIs, so no power law describes it")
    if why == "stability_edge":
        return (f"Answer: not decided: at B = {', '.join(map(str, j['lr_opt_at_edge']))} the fitted lr_opt reaches the "
                f"stability edge (a run diverged at the next lr up), so the optimum there may be where training "
                f"breaks, not the bottom of a bowl; "
                f"one power law through both gives β = {a['beta']:.3f} {_ci(a['ci95'])}, an average, not an exponent")
    if why == "open_edge":
        return _open_edge_answer(r)
    if why == "form" and not j["bend"]["bends"]:  # a bending form fits, though not a bend at the middle B
        return (f"Answer: not decided: lr_opt(B) is not a power law: {_form_view(r)}, though no change of slope at B = "
                f"{j['bend']['slopes']['lower_range'][1]} stands out; one power law over the whole range would have "
                f"β = {a['beta']:.3f} {_ci(a['ci95'])}, an average, not an exponent")
    forms = f"; {_form_view(r)}" if _form_view(r) else ""  # what is left: lr_opt bends (slopes_answer)
    return (f"Answer: not decided: lr_opt bends in log-log, no single β: {slope_text(j)}{forms}; one power law "
            f"over the whole range would have β = {a['beta']:.2f} {_ci(a['ci95'])}, an average, not an exponent")


def _per_b_declined(r) -> str:
    """The per-B optima's Answer where it does not commit: no bowl, estimator-dependent, or lr_opt bends."""
    if r["answer"].get("untested") == "no_bowl":
        return ("Answer: not decided: the joint model of every run finds no bowl along one power-law lr_opt "
                f"(a flat loss at each batch size fits about as well); the per-B optima give {_per_b(r)}"
                + (f"; {_per_b_form_view(r)}" if r["preferred_form"] != POWER_LAW else ""))
    if r["answer"].get("untested") == "estimator_dependent":
        return (f"Answer: not decided (estimator-dependent): the per-B optima give {_per_b(r)}; "
                f"{_cross_check_text(r, 'band')}")
    cis = f"95% CI {_ci(r['ci95_t'])}, bootstrap {_ci(r['ci95_bootstrap'])}"
    return (f"Answer: not decided: {_per_b_form_view(r)}; one power law through them would have β = "  # issue 23.4
            f"{r['beta']:.3f} ({cis}), an average, not an exponent")


def _open_edge_answer(r) -> str:
    """Not decided: a bowl's bottom unseen above the highest lr that trained, and the hypotheses inside β's CI
    depend on where training breaks."""
    a, e = r["answer"], r["surface"]["open_edge"]
    inside = lambda ci: ", ".join(f"{h:g}" for h in hypotheses_in(r, ci)) or "none"  # noqa: E731
    changed = edge_changes(r["surface"], hypotheses_in(r))
    between = ", ".join(f"{h:g}" for h in changed if not (holds(a["ci95"], h) or holds(e["ci95"], h)))
    if 0.0 in e["shift_range"] and inside(a["ci95"]) != inside(e["ci95"]):
        differ = (f"the hypotheses inside the CI differ ({inside(a['ci95'])} against {inside(e['ci95'])})"
                  + (f", and it passes over {between} between them" if between else ""))
    else:  # the CI passes over a hypothesis in between, or the open B lie on both sides of the middle
        differ = (f"the CI holds {', '.join(f'{h:g}' for h in changed)} for some places training may break "
                  "and not for others")
    return (f"Answer: not decided: {_open_edge_where(e)}; β = {a['beta']:.3f} {_ci(a['ci95'])} if training holds "
            f"up to the bottom, {_edge_extreme(e, 'if it breaks')}, and {differ}")


def unchecked_text(r) -> str:
    """Where no cross-check could test the answer for estimator dependence ("" where one did)."""
    a = r["answer"]
    if None in a["ci95"]:
        return ("the CI is open, so no cross-check can disagree with it" + (
            f" (the per-B optima give {_per_b(r)})" if a["cross_check"] else ""))
    band = a.get("cross_checks", {}).get("band", {})
    if not a["cross_check"] and band.get("difference") is None:
        return (f"no cross-check: only {r['n_used']} batch size(s) have a per-B optimum and the near-optimal band "
                "gives no β")
    if not a["cross_check"]:
        return f"only the near-optimal band cross-checks β: {r['n_used']} batch size(s) have a per-B optimum"
    return ""


def _edge_extreme(e, condition) -> str:
    """β where training breaks right above the highest lr that trained: at every open B where all move β one
    way, else at some of them, from the β lowest to the highest."""
    down, up = e["shift_range"]
    if 0.0 in (down, up):
        return (f"about {e['beta']:.3f} {_ci(e['ci95'])} {condition} right above the highest lr that trained (the line "
                "through the optima moved, not a refit)")
    beta = e["beta"] - e["shift"]
    return (f"about {beta + down:.3f} to {beta + up:.3f} (CIs reaching {_ci(e['ci95_reach'])}) {condition} right above "
            "the highest lr that trained at some of them (lines through the optima moved, not refits)")


def _open_edge_where(e) -> str:
    """Where a bowl's bottom is unseen between the highest lr that trained and a diverged one."""
    return (f"at B = {', '.join(map(str, e['batch_sizes']))} the fitted bowl's bottom lies above the highest lr that "
            "trained and below the lowest where a run diverged, unseen")


def holds(ci, value) -> bool:
    """Whether a CI holds value (an end of None: open on that side)."""
    return (ci[0] is None or ci[0] <= value) and (ci[1] is None or value <= ci[1])


def edge_changes(joint, hypotheses) -> list:
    """The hypotheses inside β's CI for some place training may break at an open edge and outside it for
    another. The CI slides with β over the edge's shift_range, so a hypothesis changes where it lies inside
    the CIs' reach but outside their core (the part every one of them holds), in between included."""
    edge = joint.get("open_edge")
    if not edge:
        return []
    down, up = edge["shift_range"]
    core = slide(joint["ci95"], up, down)
    return [h for h in hypotheses if holds(edge["ci95_reach"], h) and not holds(core, h)]


def hypotheses_in(r, ci=(None, None)) -> list:
    """The hypothesised βs a CI holds (every one without a CI)."""
    return [h["beta"] for h in r["hypotheses"] if holds(ci, h["beta"])]


CROSS_CHECK_NAMES = {"per_batch": "the per-B optima", "band": "the near-optimal band"}


def _cross_check_text(r, name) -> str:
    """A cross-check that disagrees with the joint model: its β, and by how much."""
    c = r["answer"]["cross_checks"][name]
    value = _per_b(r) if name == "per_batch" else f"β = {c['beta']:.3f} {_ci(c['ci95'])}"
    return (f"{CROSS_CHECK_NAMES[name]} {value}, a difference of {c['difference']:.3f}, more than the combined CI "
            f"half-width ({c['combined_half_width']:.3f})")


def _form_view(r) -> str:
    """Which form a bending lr_opt takes: the joint model's comparison, else (no joint fit) what the
    per-B optima's comparison says when it rejects a power law ("" when it does not)."""
    joint = (r.get("surface") or {}).get("forms")
    if joint:
        pref = joint["preferred"]
        if pref in (MCCANDLISH, SURGE):
            return f"the {pref} form fits it best, with {bn_text(joint[pref])}"
        if pref == UNDECIDED:
            return (f"the {MCCANDLISH} form ({bn_text(joint[MCCANDLISH])}) and the {SURGE} form "
                    f"({bn_text(joint[SURGE])}) fit it alike")
        return f"neither the {MCCANDLISH} nor the {SURGE} form fits it better than a power law"
    return _per_b_form_view(r)


def _per_b_form_view(r) -> str:
    """What the per-B optima's form comparison says when it rejects a power law ("" when it does not)."""
    pref = r["preferred_form"]
    if pref in (MCCANDLISH, SURGE):
        return f"the per-B optima prefer the {pref} form with {bn_text(r['forms'][pref])}"
    if pref == UNDECIDED:
        return "the per-B optima bend (McCandlish or surge, undecided)"
    if pref not in (None, POWER_LAW):  # why (χ², p) is the report's form table's
        return "the per-B optima fit no form of lr_opt(B) within their errors"
    return ""


def hypotheses_line(r, hypotheses) -> str:
    """One clause: what the answer's CI says about the hypotheses, or that none is tested."""
    a = r["answer"]
    if a["estimator"] != "surface":
        why = {"estimator_dependent": "the estimators disagree", "no_bowl": "no bowl along one lr_opt curve"}
        if a.get("untested") in why:
            return f"Hypotheses: not tested ({why[a['untested']]})"
        return "Hypotheses: " + (hypothesis_sentence(r, hypotheses) if r["preferred_form"] == POWER_LAW else
                                 "not tested (the data do not show a constant slope)")
    if a["untested"] is not None:
        why = {"estimator_dependent": "the estimators disagree",
               "stability_edge": "lr_opt reaches the stability edge",
               "open_edge": "they depend on where training breaks above the highest lr that trained"}.get(
                   a["untested"], "no constant β")
        return f"Hypotheses: not tested ({why})"
    held = [h for h in r["hypotheses"] if h["in_ci95_surface"]]
    lo, hi = a["ci95"]
    width = "open" if None in (lo, hi) else f"{(hi - lo) / 2:.3f}"
    return "Hypotheses: " + held_clause(r, held, a["ci95"], "CI", a["beta"], width, hypotheses)


def _left_out_clause(surface) -> str:
    """What the joint model did not read as losses: diverged runs, and the runs that survived at or past
    a stability edge (the calm ones there, not a sample of that lr)."""
    diverged, survived = surface["diverged_left_out"], surface.get("survivors_left_out", 0)
    if not diverged:
        return ""
    text = f"; {diverged} diverged run(s) are not read as losses"
    if surface.get("stability_edge"):
        text += ", only as a cap on lr_opt below the lowest lr where a run diverged"
    if survived:
        text += f", nor are the {survived} run(s) that did not diverge at or past that lr"
    return text


def caveats_line(r) -> str:
    """The assumption the answer rests on first, then what else qualifies it, then the exclusions."""
    parts = []
    if r["answer"]["estimator"] == "surface":
        curve = ("a broken line in log-log for lr_opt (one change of slope)" if slopes_answer(r) else "lr_opt ∝ B^β")
        parts.append(f"the joint model assumes {curve} and, near each optimum, a loss bowl with a cubic wall on "
                     "each side whose steepness drifts with log B" + _left_out_clause(r["surface"]))
        if r["answer"]["untested"] is None and (unchecked := unchecked_text(r)):  # estimator dependence untested
            parts.append(unchecked)
        lof = (r["surface"]["bend"] if slopes_answer(r) else r["surface"]).get("lack_of_fit") or {}
        if lof.get("used"):
            line = "the broken line" if slopes_answer(r) else "the power law"
            about = " about a quadratic in log B" if lof.get("s2_smooth") is not None else ""  # surface._smooth
            parts.append(f"each batch size's own lr_opt departs from {line} by more than the runs' scatter: the "
                         f"CIs are at least as wide as those departures{about} make them, and "
                         f"{'the slopes are averages' if slopes_answer(r) else 'β is an average slope'} over the "
                         "batch sizes run")
        edge = r["surface"].get("open_edge")
        if edge and r["answer"]["untested"] != "open_edge" and not slopes_answer(r):  # a bend answers with slopes
            same = not edge_changes(r["surface"], hypotheses_in(r))
            parts.append(f"{_open_edge_where(edge)}: β would be {_edge_extreme(edge, 'were training to break')}, "
                         + ("the same hypotheses inside the CI" if same else "other hypotheses inside the CI"))
        per_b, j = _per_b_form_view(r), r["surface"]
        if per_b and j["forms"]["preferred"] == NO_FORM and not j["bend"]["bends"]:  # a cross-check's form only
            parts.append(f"{per_b}, which the joint model of every run does not find (a cross-check: the per-B "
                         "optima's errors can understate the noisiest batch sizes' scatter, as one seed's pooled σ "
                         "does where σ falls with B, and take it for a bend)")
    else:
        parts.append(f"no joint model of the loss surface: {r['answer']['surface_missing']}"
                     if r["answer"].get("untested") == "no_bowl" else
                     f"β comes from the per-B optima alone (no joint model of the loss surface: "
                     f"{r['answer']['surface_missing']}), which assume a parabola near each optimum")
    budget_text = budget.sentence(r["budget"]) if r.get("budget") else ""
    if budget_text and r["budget"]["mixes_repetition"]:  # it changes what β means: right after the assumption
        parts.append(budget_text)
    clipped = [p["batch_size"] for p in r["per_batch"] if GRAD_CLIPPED in p["flags"] and p["included"]]
    if clipped:
        parts.append(f"gradient clipping was active on most steps near lr_opt at B={', '.join(map(str, clipped))}: "
                     "there β describes the clipped step, not the nominal lr")
    if r["non_monotonic"] and r["answer"].get("untested") != "non_monotonic":
        d = r["non_monotonic"][0]
        parts.append(f"lr_opt is non-monotonic in B: it falls from B={d['from_batch_size']} to "
                     f"B={d['to_batch_size']} beyond both CIs")
    if budget_text and not r["budget"]["mixes_repetition"]:
        parts.append(budget_text)
    return "Caveats: " + "; ".join(parts) + ". " + exclusion_text(r)


def verdict(r, hypotheses) -> str:
    """Three lines: Answer, Hypotheses, Caveats (statistics and method names are in the report's tables)."""
    if r["answer"]["estimator"] != "surface" and r["beta"] is None:
        return (f"Answer: no beta: only {r['n_used']} batch size(s) have a located, bracketed, identifiable optimum "
                f"(need at least 3), and no joint model of the loss surface: {r['answer']['surface_missing']}."
                "\nHypotheses: not tested.\nCaveats: " + exclusion_text(r))
    return "\n".join([answer_line(r), hypotheses_line(r, hypotheses), caveats_line(r)])


def noise_sentence(r) -> str | None:
    """B_simple measured in the gradients next to the B_noise the loss surface implies (McCandlish)."""
    g = r.get("gradient_noise") or {}
    if g.get("b_simple_median") is None:
        return None
    text = (f"Gradients say B_simple ≈ {g['b_simple_median']:.3g} (median over {len(g['per_batch'])} batch sizes, "
            "end of training, at each lr_opt)")
    fits = r.get("forms") or {}
    mc = fits.get(MCCANDLISH)
    weakly_behind = r["preferred_form"] == SURGE and close_second(fits, SURGE) == MCCANDLISH
    if mc and (r["preferred_form"] in (MCCANDLISH, UNDECIDED) or weakly_behind):
        text += f"; the loss surface says {bn_text(mc)} (McCandlish form)"
    return text + "."
