# Locate lr_opt per batch size, fit lr_opt = C * B^beta, plots and a verdict.
rule fit:
    input:
        csv=rules.aggregate.output.csv,
        metrics=get_metrics_files,
        plans=get_plans,
    output:
        **get_analysis_outputs("results/{sweep}/analysis"),
        fit="results/{sweep}/analysis/fit.json",
        best="results/{sweep}/analysis/best_per_batch.csv",
        report_md="results/{sweep}/analysis/report.md",
    log:
        "results/{sweep}/logs/fit.log",
    conda:
        "../../envs/lrscale.yaml"
    params:
        config=get_fit_config_json,
        out_dir=get_fit_out_dir,
    shell:
        "python -m lrscale fit {input.csv} --config-json {params.config:q} --out {params.out_dir}"
        " --metrics {input.metrics} --plans {input.plans} > {log} 2>&1"


# One horizon's fit, of a sweep with several (budget.values): analysis/D{horizon}/. Its own rule (its
# command adds --horizon; a changed `fit` would rerun in every finished sweep).
rule fit_horizon:
    input:
        csv=rules.aggregate.output.csv,
        metrics=get_horizon_metrics_files,
    output:
        **get_analysis_outputs(
            f"results/{{sweep}}/analysis/{lrscale_config.HORIZON}", for_report=False
        ),
        fit=f"results/{{sweep}}/analysis/{lrscale_config.HORIZON}/fit.json",
        best=f"results/{{sweep}}/analysis/{lrscale_config.HORIZON}/best_per_batch.csv",
        report_md=f"results/{{sweep}}/analysis/{lrscale_config.HORIZON}/report.md",
    log:
        f"results/{{sweep}}/logs/fit_{lrscale_config.HORIZON}.log",
    conda:
        "../../envs/lrscale.yaml"
    params:
        config=get_fit_config_json,
        out_dir=get_fit_out_dir,
    shell:
        "python -m lrscale fit {input.csv} --config-json {params.config:q} --out {params.out_dir}"
        " --horizon {wildcards.horizon} --metrics {input.metrics} > {log} 2>&1"


# How lr_opt moves with the horizon: the horizons' fits summarised (joint β and γ, one plot).
rule horizons:
    input:
        fits=get_fit_files,
        csv=rules.aggregate.output.csv,
    output:
        summary="results/{sweep}/analysis/horizons.json",
        report_md="results/{sweep}/analysis/horizons.md",
        plot=report(
            "results/{sweep}/analysis/lr_opt_by_horizon.png",
            caption="../report/lr_opt_by_horizon.rst",
            category="2. lr_opt vs B",
        ),
        b_crit_plot=report(
            "results/{sweep}/analysis/b_crit.png",
            caption="../report/b_crit.rst",
            category="2. lr_opt vs B",
        ),
    log:
        "results/{sweep}/logs/horizons.log",
    conda:
        "../../envs/lrscale.yaml"
    params:
        out_dir=lambda wildcards, output: str(Path(output.summary).parent),
    shell:
        "python -m lrscale horizons {input.fits} --results {input.csv} --out {params.out_dir} > {log} 2>&1"


use rule fit as fit_partial with:
    input:
        csv=rules.aggregate_partial.output.csv,
        metrics=get_existing_metrics_files,
        plans=get_existing_plans,
    output:
        **get_analysis_outputs("results/{sweep}/partial/analysis", for_report=False),
        fit="results/{sweep}/partial/analysis/fit.json",
        best="results/{sweep}/partial/analysis/best_per_batch.csv",
        report_md="results/{sweep}/partial/analysis/report.md",
    log:
        "results/{sweep}/logs/fit_partial.log",


# Several horizons: the partial results.csv only (fit one with `lrscale fit … --horizon V`).
rule partial:
    input:
        expand(
            (
                rules.fit_partial.output.fit
                if HORIZONS == [None]
                else rules.aggregate_partial.output.csv
            ),
            sweep=SWEEP,
        ),


# The resolved config as a page of the HTML report (`snakemake --report`).
rule config_page:
    output:
        page=report(
            "results/{sweep}/config.html",
            caption="../report/config.rst",
            category="5. Runs",
        ),
    log:
        "results/{sweep}/logs/config_page.log",
    conda:
        "../../envs/lrscale.yaml"
    params:
        config=get_config_json,
    shell:
        "python -m lrscale config-page --config-json {params.config:q} --out {output.page} > {log} 2>&1"
