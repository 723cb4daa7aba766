"""The fit's outputs: fit.json, best_per_batch.csv, report.md (tables + verdict + plots) and the
HTML pages of Snakemake's report (lrscale.PAGES: the verdict page, results.csv and best_per_batch.csv
as tables, the resolved config)."""

import math
from pathlib import Path

from .. import PAGES, PLOTS
from ..fileio import atomic_write_json, atomic_write_text
from . import budget
from .names import MCCANDLISH, POWER_LAW, SURGE
from .surface import BOWL_P, LOF_P, WINDOW_DECADES
from .verdict import FORM_NAMES, bn_text, interval, lr_interval, noise_sentence, slope_text


def _fmt(v, spec=".4g"):
    return "—" if v is None else format(v, spec)


def summary_table(result) -> str:
    lines = ["| B | lr_opt | 95% CI | SE (decades) | loss at opt | noise σ | used | flags |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["per_batch"]:
        ci_s = lr_interval(r.get("lr_opt_ci95"), r["lrs"])
        flags = "; ".join(f"{k}: {v}" for k, v in r["flags"].items()) or "—"
        lines.append(f"| {r['batch_size']} | {_fmt(r['lr_opt'], '.4g')} | {ci_s} | {_fmt(r['lr_opt_se_log10'], '.3f')} "
                     f"| {_fmt(r['loss_at_opt'])} | {_fmt(r.get('noise_sigma'), '.3g')} | {'yes' if r['included'] else 'no'} "
                     f"| {flags} |")
    return "\n".join(lines)


def noise_text(result) -> str:
    """Which σ of one run's loss the SEs rest on: one for every B, or one per B (fit.json `noise_by_batch`)."""
    m = result.get("noise_by_batch") or {}
    if not m.get("per_batch"):
        return f"Noise: {m['reason']}." if m.get("reason") else ""
    return (f"Noise: {m['reason']} (the σ column; τ = {m['tau']:.2f} in ln σ² between B beyond sampling). Every SE, "
            "CI, curvature test and bootstrap draw of a batch size uses its own σ.")


def budget_text(result) -> str:
    """What the sweep held fixed and the passes over the training data per B (a paragraph, or "")."""
    b = result.get("budget") or {}
    said = budget.sentence(b) if b else ""
    epochs = ", ".join(f"B={k} {v:.2g}" for k, v in b.get("epochs", {}).items())
    parts = [said[0].upper() + said[1:] + "." if said else "",
             f"Passes over the training data (median of the runs): {epochs}." if epochs else "",
             budget.optimizer_sentence(result.get("optimizer_scaling"))]
    text = " ".join(p for p in parts if p)
    return text + "\n\n" if text else ""


def joint_table(result) -> str:
    """The joint model of the loss surface: β, its bend test and the shape it fitted (fit.json `surface`)."""
    j = result.get("surface") or {}
    if j.get("beta") is None:
        return (f"No joint model: {j.get('reason', 'no per-B optima')}.\n\nNear-optimal band (cross-check): "
                + band_text(result.get("band") or {})
                + _agreement(result["answer"].get("cross_checks", {}).get("band"), "the per-B optima's β") + ".")
    s, bend = j["shape"], j["bend"]
    lof = j.get("lack_of_fit") or {}
    rows = [("β (lr_opt ∝ B^β)", f"{j['beta']:.3f} {interval(j['ci95'], '.3f')} (profile likelihood, F(1, {j['dof']})"
             + (f"; widened to the t-CI, {lof['vertex_dof']} dof, of the line through each B's own lr_opt)"
                if lof.get("widened") else ")")),
            ("lack of fit of the line (each B's own lr_opt against it)", _lack_of_fit_text(lof)),
            ("lack of fit of the bend's broken line", _lack_of_fit_text(j["bend"].get("lack_of_fit") or {})),
            ("bowls along the lr_opt curve (one-sided F test against a flat line at each B)",
             f"p = {j['bowl_p']:.2g} (no joint model above {BOWL_P:g})"),
            ("runs, batch sizes", f"{j['n_runs']} runs within {WINDOW_DECADES:g} decade(s) of each best lr; B = "
             + ", ".join(map(str, j["batch_sizes"]))),
            ("diverged runs (not read as losses)", str(j["diverged_left_out"])),
            ("runs that survived at or past a stability edge (not read)", str(j.get("survivors_left_out", 0))),
            ("stability edge (lowest lr where a run diverged: caps lr_opt)", _edge_text(j)),
            ("residual σ", f"{j['sigma']:.3g}" + _trend_text(j)),
            ("per-B optima (cross-check)", _per_b_check_text(result)),
            ("near-optimal band (cross-check)", band_text(result.get("band") or {})
             + _agreement(result["answer"].get("cross_checks", {}).get("band"))),
            ("bend (a change of slope vs a power law)", f"p = {bend['p_value']:.2g}; {slope_text(j)}" + _jackknife_text(bend)),
            ("forms of lr_opt(B) (RSS of every run)", _forms_text(j)),
            ("cubic wall above / below the optimum", f"{s['k_above'][0]:.2f} → {s['k_above'][1]:.2f} / "
             f"{s['k_below'][0]:.2f} → {s['k_below'][1]:.2f} (B = {s['at_batch_size'][0]} → {s['at_batch_size'][1]})")]
    return "| quantity | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _agreement(check, answer="the joint β") -> str:
    """How far a cross-check's β lies from the answer's, against their combined CI half-width."""
    if not check or check.get("difference") is None:
        return ""
    if math.isinf(check["combined_half_width"]):
        return f"; {check['difference']:.3f} from {answer} (a CI is open: no disagreement can show)"
    return (f"; {check['difference']:.3f} from {answer}, " + ("more" if check["disagree"] else "less")
            + f" than the combined CI half-width {check['combined_half_width']:.3f}")


def _per_b_check_text(result) -> str:
    """The per-B optima's β (t and bootstrap CIs) and how far it lies from the joint β."""
    if result["beta"] is None:
        return f"none: {result['n_used']} batch size(s) have a per-B optimum (need at least 3)"
    return (f"β = {result['beta']:.3f} {interval(result['ci95_t'], '.3f')} (t), "
            f"{interval(result['ci95_bootstrap'], '.3f')} (bootstrap)"
            + _agreement(result["answer"].get("cross_checks", {}).get("per_batch")))


def _jackknife_text(bend) -> str:
    """Whether the bend's slopes' CIs were widened to the delete-one-B jackknife's (surface._jackknife)."""
    jk = bend["slopes"].get("jackknife")
    if not jk or not jk["widened"]:
        return ""
    moved = ", read about a quadratic in log B" if any(jk.get("smooth_departure", {}).values()) else ""
    return f" (CIs widened to the t-CI, {jk['dof']} dof, of the slopes refitted with each B left out{moved})"


def _lack_of_fit_text(lof) -> str:
    """A lack_of_fit block of fit.json's surface (lrscale.analysis.surface._lack_of_fit) in words."""
    if not lof:
        return "—"
    if lof.get("f") is None:
        return "not tested (too few runs left for their own scatter)"
    text = f"F({lof['dof']}, {lof['pure_dof']}) = {lof['f']:.3g}, p = {lof['p_value']:.2g}"
    if not lof["used"]:
        return text + ("; within the runs' scatter" if lof["p_value"] >= LOF_P else
                       "; too few B's own lr_opt among the lrs read to size the departures")
    about = " about a quadratic in log B (a smooth curve's own departure from the line is not error)" \
        if lof.get("s2_smooth") is not None else ""
    return text + (f"; the CIs are widened to the departures' t-CI{about} ({len(lof['vertices'])} B, {lof['vertex_dof']} dof)"
                   if lof["widened"] else f"; the CIs were already wider than the departures' t-CI{about}")


def _forms_text(j) -> str:
    forms = j.get("forms")
    if not forms:
        return "not fitted"
    parts = [f"power law {forms[POWER_LAW]['rss']:.4g}"] + [
        f"{name} {forms[name]['rss']:.4g}, {bn_text(forms[name])}" for name in (MCCANDLISH, SURGE)]
    return "; ".join(parts) + f"; preferred: **{forms['preferred']}**"


def _edge_text(j) -> str:
    from .plots import plain  # as readable(): the plots' plain decimals

    edges = j.get("stability_edge") or {}
    if not edges:
        return "none above any best lr"
    held, unseen = set(j.get("lr_opt_at_edge") or []), set((j.get("open_edge") or {}).get("batch_sizes", []))
    return "; ".join(f"B = {b}: {plain(lr)}" + (" (lr_opt held there: edge-limited)" if int(b) in held else
                                                " (lr_opt above the highest lr that trained: bottom unseen)"
                                                if int(b) in unseen else "") for b, lr in edges.items())


def _trend_text(j) -> str:
    t = j.get("sigma_trend") or {}
    if t.get("p_value") is None:
        return ""
    return (f" at B = {j['b_ref']:.3g}; σ ∝ B^{t['omega']:.2f} (p = {t['p_value']:.2g}, "
            + (("each B weighted by it" + (f"; ω ± {t['omega_se']:.2f} moves β by ±{t['beta_move']:.3f}: t times that added to its CI in quadrature"
                                           if "beta_move" in t else "") + ")")
               if t["used"] else "not modelled: the same σ for every B)"))


def band_text(band: dict) -> str:
    """The band cross-check's β with its CI and the batch sizes it left out."""
    out = "; ".join(f"B={x['batch_size']} ({x['reason']})" for x in band.get("left_out", []))
    if band.get("beta") is None:
        return f"none: {band.get('reason', 'not run')}" + (f"; left out: {out}" if out else "")
    t = band["tolerance"]
    return (f"β = {band['beta']:.3f} {interval(band['ci95'], '.3f')} (t, {band['dof']} dof; runs within "
            f"max({t['relative']:.2%} of the best loss, {t['noise_sd']:g} SEs of a seed mean))"
            + (f"; left out: {out}" if out else ""))


def forms_table(result) -> str:
    """One row per form: parameters with CIs, χ², p, and which one is preferred."""
    if not result.get("forms"):
        return "No form fitted (fewer than 3 usable batch sizes)."
    lines = ["| form | parameters (95% CI) | local slope (smallest → largest B) | χ² (dof) | p | preferred |",
             "|---|---|---|---|---|---|"]
    for name, f in result["forms"].items():
        if name == POWER_LAW:
            params = f"β = {f['beta']:.3f} {interval(f['beta_ci95'])}, C = {f['scale']:.3g}"
        else:
            params = (f"B_noise = {f['b_noise']:.3g} {interval(f['b_noise_ci95'])}, scale = {f['scale']:.3g} "
                      f"{interval(f['scale_ci95'])}")
        s = f["local_slope"]
        p = "—" if f["gof_p"] is None else f"{f['gof_p']:.2g}"
        lines.append(f"| {FORM_NAMES[name]} | {params} | {s['smallest_b']:.2f} → {s['largest_b']:.2f} | "
                     f"{f['chi2']:.1f} ({f['dof']}) | {p} | {'**yes**' if result['preferred_form'] == name else ''} |")
    return "\n".join(lines) + f"\n\nPreferred: **{result['preferred_form']}** — {result.get('preference_reason', '')}."


def rounds_section(result) -> str:
    """An adaptive sweep's rounds: what each planned, and which edges extension resolved."""
    rounds = result.get("rounds")
    if not rounds:
        return ""
    lines = ["## Rounds", "", f"{rounds['n']} rounds: the grid, then "
             + ", ".join(f"round {p['round']}: {p['runs']} runs" for p in rounds["plans"]) + ".", ""]
    for p in rounds["plans"]:
        acts = "; ".join(f"B={b} {v['action']}" for b, v in p["per_batch"].items() if v["action"] != "done")
        lines.append(f"- round {p['round']}: {acts or 'nothing left to do'}")
    for r in result["per_batch"]:
        added = [f"{lr:.3g} (round {k}, {n} run{'s' if n > 1 else ''})"
                 for lr, k, n in zip(r["lrs"], r.get("lr_rounds", []), r["runs_per_lr"]) if k > 1]
        if added:
            lines.append(f"- B={r['batch_size']}: lrs added {', '.join(added)}")
    resolved = [r["batch_size"] for r in result["per_batch"] if r.get("edge_resolved_by_extension")]
    if resolved:
        lines.append(f"- edges resolved by extension: B = {', '.join(map(str, resolved))}")
    if rounds["budget_reached"]:
        lines.append("- the run budget (max_runs) was reached: planning stopped")
    if rounds.get("stopped"):  # what the rounds leave open (or that nothing is), in plain words
        lines.append(f"- {rounds['stopped']}")
    return "\n".join(lines) + "\n\n"


def noise_table(result) -> str:
    """B_simple and noise kurtosis per batch size (fit.json `gradient_noise`)."""
    g = result.get("gradient_noise") or {}
    if not g.get("per_batch"):
        return "No gradient-noise probes in these runs (train.noise_probes: 0, or metrics.json from before them)."
    lines = ["| B | lr | B_simple | 95% CI | noise excess kurtosis | 95% CI | tail | seeds |", "|" + "---|" * 8]
    for r in g["per_batch"]:
        lines.append(f"| {r['batch_size']} | {r['lr']:.3g} | {_fmt(r['b_simple'], '.3g')} | "
                     f"{interval(r['b_simple_ci95'])} | {_fmt(r['kurtosis'], '.3g')} | {interval(r['kurtosis_ci95'])} | "
                     f"{', '.join(r['tail']) or '—'} | {r['seeds']} |")
    text = "\n".join(lines) + f"\n\nFrom {g['where']}."
    smallest = next((r for r in g["per_batch"] if r["kurtosis_ci95"]), None)
    if smallest and (smallest["kurtosis_ci95"][0] or 0) > 0:  # heavy tails seen where they are hardest to measure
        text += (f" The noise at B={smallest['batch_size']} is heavier-tailed than Gaussian; there the kurtosis "
                 "estimate runs low and its CI misses low (bench/noise_estimators.py): read it as a lower bound.")
    mechanism = noise_sentence(result)  # B_simple next to the B_noise the loss surface implies
    return text + (f"\n\n{mechanism}" if mechanism else "")


def _best_csv(result) -> str:
    best = ["batch_size,lr_opt,lr_opt_ci_low,lr_opt_ci_high,loss_at_opt,included,flags,lr_opt_se_log10,noise_sigma"]
    for r in result["per_batch"]:
        ci = r.get("lr_opt_ci95") or [None, None]
        cells = (r["batch_size"], r["lr_opt"], ci[0], ci[1], r["loss_at_opt"], r["included"])
        best.append(",".join(["" if v is None else str(v) for v in cells] + ['"' + ";".join(r["flags"]) + '"']
                             + ["" if r.get(k) is None else str(r[k]) for k in ("lr_opt_se_log10", "noise_sigma")]))
    return "\n".join(best) + "\n"


def write_all(result, out: Path, runs=(), results_frame=None) -> None:
    """Plots first, then fit.json, the CSV, the report and its pages; each written atomically.
    `results_frame`: the results CSV as read (Sweep.table). `result` is only read."""
    from . import plots  # matplotlib only when writing outputs

    plots.render_all(result, result["boot_betas"], out, runs)
    print(f"[lrscale fit] training curves from {len(runs)} metrics files")
    atomic_write_json(out / "fit.json", {k: v for k, v in result.items() if k != "boot_betas"})
    atomic_write_text(out / "best_per_batch.csv", _best_csv(result))
    table = summary_table(result)
    verdict_lines = "\n".join(f"- {line}" for line in result["verdict"].split("\n"))  # Answer, Hypotheses, Caveats
    report = (f"# lrscale fit: {result['input']['path']}\n\nEstimator: {result['estimator']}; noise σ = "
              f"{_fmt(result['noise_sigma'], '.3g')} ({result['noise_source']}); bootstrap: {result['bootstrap']['n']} "
              f"({result['bootstrap']['method']}).\n\n## lr_opt per batch size\n\n{table}\n\n{result['locating']}\n\n"
              f"{noise_text(result)}\n\n{budget_text(result)}"
              f"{rounds_section(result)}## Joint model of the loss surface\n\n{joint_table(result)}\n\n"
              f"## Form comparison\n\n{forms_table(result)}\n\n"
              f"## Gradient noise\n\n{noise_table(result)}\n\n## Verdict\n\n{verdict_lines}\n\n"
              + "".join(f"![{p}]({p}.png)\n" for p in PLOTS))
    atomic_write_text(out / "report.md", report)
    write_pages(result, report, out, results_frame)
    print(table)
    print()
    print("Verdict:\n" + result["verdict"])


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em;line-height:1.4}}
table{{border-collapse:collapse;font-size:.9em}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left}}
th{{background:#f0f0f0;position:sticky;top:0}}tbody tr:nth-child(even){{background:#fafafa}}.verdict{{font-size:1.1em;background:#f6f8fa;border-left:4px solid #0969da;padding:.6em 1em}}
</style></head><body>
{body}
</body></html>
"""


def readable(cell) -> str:
    """A cell for people: a number written with more than 6 significant digits (0.33759316079318524)
    shown to 4 in plain decimals (0.3376; 1796281694 for a timestamp); anything else as written."""
    text = "" if cell is None else str(cell)
    digits = len(text.lstrip("-").replace(".", "", 1).lstrip("0"))
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value) or digits <= 6 or "e" in text.lower():
        return text
    from .plots import plain  # the plots' plain decimals (the pages are written with the plots)

    return f"{value:.0f}" if abs(value) >= 1e4 else plain(value, 4)


def table_page(title: str, frame) -> str:
    """A table (pandas DataFrame) as an HTML page (Snakemake's report shows .html results; a .csv is only
    a download), long numbers shown to 4 significant digits (the file itself keeps every digit)."""
    import html

    body = frame.astype(object).where(frame.notna(), None).map(readable).to_html(index=False, border=0, escape=True)
    note = "<p>Numbers shown to 4 significant digits; the CSV holds every digit.</p>"
    return PAGE.format(title=html.escape(title), body=f"<h1>{html.escape(title)}</h1>\n{note}\n{body}")


def write_pages(result, report_md: str, out: Path, results_frame) -> None:
    """PAGES for Snakemake's HTML report: report.html (the verdict first, then report.md's tables;
    the plots are results of their own there), results_table.html (`results_frame`: the results CSV as read)
    and best_per_batch_table.html."""
    import html
    import io

    import markdown
    import pandas as pd

    best = pd.read_csv(io.StringIO(_best_csv(result)), dtype=str, keep_default_na=False)  # every cell as written
    text = report_md.split("\n## Verdict\n")[0]  # the verdict leads the page instead; the plots are results
    body = (f"<h1>Verdict</h1>\n<p class=\"verdict\">{html.escape(result['verdict']).replace(chr(10), '<br>')}</p>\n"
            + markdown.markdown(text.split("\n", 1)[1], extensions=["tables"]))
    pages = {"report": PAGE.format(title="lrscale verdict", body=body),
             "results_table": table_page(f"results.csv ({result['input']['path']})", results_frame),
             "best_per_batch_table": table_page("best_per_batch.csv: lr_opt per batch size", best)}
    assert list(pages) == PAGES, "lrscale.PAGES and the pages written disagree"
    for name, page in pages.items():
        atomic_write_text(out / f"{name}.html", page)


def write_config_page(cfg: dict, out) -> None:
    """The resolved config as an HTML page (YAML, defaults filled in) for Snakemake's report."""
    import html

    import yaml

    text = yaml.safe_dump(cfg, sort_keys=True, default_flow_style=None, width=100)
    body = f"<h1>Config of sweep {html.escape(cfg['sweep']['name'])}</h1>\n<pre>{html.escape(text)}</pre>"
    atomic_write_text(Path(out), PAGE.format(title=f"config: {html.escape(cfg['sweep']['name'])}", body=body))
