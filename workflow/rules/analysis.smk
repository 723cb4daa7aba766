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


rule partial:
    input:
        expand(rules.fit_partial.output.fit, sweep=SWEEP),


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
