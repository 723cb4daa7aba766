"""The verdict: one paragraph built only from the intervals, so it cannot claim more than they hold.

Order: the preferred form of lr_opt(B) first (a β means one thing only under a power law), then β:
the joint model's (lrscale.analysis.surface) with its CI and the assumption it rests on, next to
the per-B optima's; then what that CI says about the hypotheses (the only one inside / not
separated / between two / outside all) — or why none is tested (no constant slope, a bend, or the
two estimators disagree: estimator-dependent); then confounds and exclusions. Without a joint fit
(too few runs near the optima) the per-B optima's t and bootstrap CIs answer, as before.
"""

from .forms import close_second
from .names import GRAD_CLIPPED, MCCANDLISH, POWER_LAW, SHARED_SHAPE, SURGE, UNDECIDED

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


def _bn(f) -> str:
    return f"B_noise = {f['b_noise']:.3g} {interval(f['b_noise_ci95'])}"


def form_sentence(r) -> str:
    pref, fits = r["preferred_form"], r["forms"]
    if pref == POWER_LAW:
        f = fits[POWER_LAW]
        return (f"Preferred form: {FORM_NAMES['power_law']} ({r['preference_reason']}; χ² = {f['chi2']:.1f} on "
                f"{f['dof']} dof)")
    if pref in (MCCANDLISH, SURGE):
        f = fits[pref]
        slope = f["local_slope"]
        return (f"Preferred form: {FORM_NAMES[pref]} with {_bn(f)} ({r['preference_reason']}); lr_opt bends: "
                f"local slope {slope['smallest_b']:.2f} at the smallest B and {slope['largest_b']:.2f} at the "
                "largest, so a single β is only an average over a bending curve")
    if pref == "undecided":
        return (f"Form undecided: {r['preference_reason']}; lr_opt bends, so a single β is only an average "
                "over a bending curve")
    return f"No form describes lr_opt(B): {r['preference_reason']}; β below is a descriptive average only"


def plausible_bend(r) -> str | None:
    """A bending form that fits at least somewhat better than the power law with a B_noise pinned on
    both sides (not a power law in disguise), though not enough to be preferred; else None."""
    pl = r["forms"][POWER_LAW]["chi2"]
    for name in (MCCANDLISH, SURGE):
        f = r["forms"][name]
        if f["chi2"] <= pl - 1 and None not in f["b_noise_ci95"]:
            return f"{name} with {_bn(f)} lowers χ² by {pl - f['chi2']:.1f}"
    return None


def hypothesis_sentence(r, hypotheses) -> str:
    """What β's CIs say about the hypotheses: a hypothesis counts as held if either CI holds it."""
    held = [h for h in r["hypotheses"] if h["in_ci95_t"] or h["in_ci95_bootstrap"]]
    name = lambda h: f"{h['beta']} ({h['name']})"  # noqa: E731
    if len(held) == 1:
        bend = plausible_bend(r)
        if bend:
            return (f"β's CIs hold only {name(held[0])}, but a bend is not excluded ({bend}): no single "
                    "hypothesis is confirmed")
        return f"consistent with {name(held[0])}; the CIs exclude the other hypotheses"
    lo = min(r["ci95_t"][0], (r["ci95_bootstrap"] or r["ci95_t"])[0])
    hi = max(r["ci95_t"][1], (r["ci95_bootstrap"] or r["ci95_t"])[1])
    if len(held) > 1:
        ordered = sorted(h["beta"] for h in held)
        gap = min(b - a for a, b in zip(ordered, ordered[1:])) / 2
        share = r.get("noise_share")
        more = "" if share is None else (
            f"; more seeds shrink only the noise share of the per-B error (~{share:.0%}), lrs nearer the optima "
            "the rest")
        return (f"NOT separated: the CIs hold {' and '.join(name(h) for h in held)}. Separating them needs a CI "
                f"half-width below {gap:.3f} (now {(r['ci95_t'][1] - r['ci95_t'][0]) / 2:.3f}){more}")
    below = sorted((h for h in r["hypotheses"] if h["beta"] < lo), key=lambda h: h["beta"])
    above = sorted((h for h in r["hypotheses"] if h["beta"] > hi), key=lambda h: h["beta"])
    gap = [h for h in r["hypotheses"] if lo <= h["beta"] <= hi]  # between two CIs that do not overlap
    if gap:
        return (f"the t and bootstrap CIs disagree ({_ci(r['ci95_t'])} vs {_ci(r['ci95_bootstrap'])}) and "
                f"{' and '.join(name(h) for h in gap)} lies between them: no hypothesis is confirmed or excluded")
    if below and above:
        return f"between {name(below[-1])} and {name(above[0])}: the CIs exclude both (and every hypothesis tested)"
    return ("inconsistent with every hypothesis tested (" + ", ".join(str(h) for h in hypotheses) + f"): β is "
            f"{'above' if below else 'below'} all of them")


def exclusion_text(r) -> str:
    if not r["excluded"]:
        return "No batch size excluded."
    parts = [f"B={e['batch_size']} ({', '.join(e['reasons'])})" for e in r["excluded"]]
    return "Excluded: " + "; ".join(parts) + "."


def _located(r) -> str:
    """The assumption the per-B optima rest on, when it is the shared shape's."""
    joined = {p["batch_size"] for p in r["per_batch"] if p.get("method") == SHARED_SHAPE}
    if not joined:
        return ""
    used = set(r["included_batch_sizes"])
    which = "every B" if used <= joined else "B = " + ", ".join(map(str, sorted(used & joined)))
    return f"; optima of {which} from one loss shape they share"


def surface_sentence(r) -> str:
    """β as the joint model gives it, with the assumption it rests on, next to the per-B optima's β."""
    j = r["surface"]
    return (f"β = {j['beta']:.3f} (95% CI {interval(r['answer']['ci95'], '.3f')}: one model of every run near the "
            f"optima, profile likelihood, {j['dof']} dof; it assumes lr_opt ∝ B^β and a loss shape of a bowl with "
            f"a cubic wall on each side that drifts with log B); the per-B optima give β = {r['beta']:.3f} "
            f"({_ci(r['ci95_t'])} weighted LS; bootstrap {_ci(r['ci95_bootstrap'])}; n = {r['n_used']}"
            f"{_located(r)})")


def answer_sentence(r, hypotheses) -> str:
    """What the joint model's CI says about the hypotheses, or why it tests none."""
    a, j = r["answer"], r["surface"]
    if a["untested"] == "form":
        return "the hypotheses on a constant β are not tested: the per-B optima do not show a constant slope"
    if a["untested"] == "bend":
        slope = j["bend"]["local_slope"]
        return (f"the hypotheses on a constant β are not tested: the joint model finds lr_opt bending in log-log "
                f"(p = {j['bend']['p_value']:.2g}; local slope {slope['smallest_b']:.2f} at the smallest B, "
                f"{slope['largest_b']:.2f} at the largest)")
    if a["untested"] == "estimator_dependent":
        return (f"estimator-dependent: the joint model's β and the per-B optima's differ by {a['difference']:.3f}, "
                f"more than their combined CI half-width ({a['combined_half_width']:.3f}); no hypothesis is tested")
    name = lambda h: f"{h['beta']} ({h['name']})"  # noqa: E731
    held = [h for h in r["hypotheses"] if h["in_ci95_surface"]]
    if len(held) == 1:
        bend = plausible_bend(r)
        text = f"{name(held[0])} is the only hypothesis inside the CI (β̂ = {a['beta']:.3f})"
        return text + (f", but a bend is not excluded ({bend}): no single hypothesis is confirmed" if bend else "")
    lo, hi = a["ci95"]
    if len(held) > 1:
        ordered = sorted(h["beta"] for h in held)
        gap = min(q - p for p, q in zip(ordered, ordered[1:])) / 2
        width = "open" if None in (lo, hi) else f"{(hi - lo) / 2:.3f}"
        return (f"NOT separated: the CI holds {' and '.join(name(h) for h in held)}. Separating them needs a CI "
                f"half-width below {gap:.3f} (now {width})")
    below = sorted((h for h in r["hypotheses"] if h["beta"] < lo), key=lambda h: h["beta"])
    above = sorted((h for h in r["hypotheses"] if h["beta"] > hi), key=lambda h: h["beta"])
    if below and above:
        return f"between {name(below[-1])} and {name(above[0])}: the CI excludes both (and every hypothesis tested)"
    return ("inconsistent with every hypothesis tested (" + ", ".join(str(h) for h in hypotheses) + f"): β is "
            f"{'above' if below else 'below'} all of them")


def verdict(r, hypotheses) -> str:
    if r["beta"] is None:
        return (f"no beta: only {r['n_used']} batch size(s) have a located, bracketed, identifiable optimum "
                f"(need at least 3). " + exclusion_text(r))
    parts = [form_sentence(r)]
    if r["answer"]["estimator"] == "surface":
        parts += [surface_sentence(r), answer_sentence(r, hypotheses)]
    else:
        parts.append(f"β = {r['beta']:.3f} (95% CI {_ci(r['ci95_t'])} weighted LS, t with {r['dof']} dof; bootstrap "
                     f"{_ci(r['ci95_bootstrap'])}; n = {r['n_used']}{_located(r)}; no joint model of the loss "
                     f"surface: {r['answer']['surface_missing']})")
        parts.append(hypothesis_sentence(r, hypotheses) if r["preferred_form"] == POWER_LAW else
                     "the hypotheses on a constant β are not tested: the data do not show a constant slope")
    clipped = [p["batch_size"] for p in r["per_batch"] if GRAD_CLIPPED in p["flags"] and p["included"]]
    if clipped:
        parts.append(f"gradient clipping was active on most steps near lr_opt at B={', '.join(map(str, clipped))}: "
                     "there β describes the clipped step, not the nominal lr")
    if (r.get("shared_shape") or {}).get("shapes_differ"):
        parts.append("the loss curves differ in shape between batch sizes around their optima (the shared-shape "
                     "test rejects it): each lr_opt carries a shape bias of its own, which its CI may not cover")
    if r["non_monotonic"]:
        d = r["non_monotonic"][0]
        parts.append(f"lr_opt is non-monotonic in B: it falls from B={d['from_batch_size']} to "
                     f"B={d['to_batch_size']} beyond both CIs")
    return "; ".join(parts) + ". " + exclusion_text(r)


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
        text += f"; the loss surface says {_bn(mc)} (McCandlish form)"
    return text + "."
