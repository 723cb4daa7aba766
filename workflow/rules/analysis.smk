# Locate lr_opt per batch size, fit lr_opt = C * B^beta, plots and a verdict.
rule fit:
    input:
        csv=rules.aggregate.output.csv,
        metrics=get_metrics_files,
        plans=get_plans,
    output:
        fit="results/{sweep}/analysis/fit.json",
        best="results/{sweep}/analysis/best_per_batch.csv",
        report="results/{sweep}/analysis/report.md",
        plots=expand("results/{{sweep}}/analysis/{plot}.png", plot=PLOTS),
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
        fit="results/{sweep}/partial/analysis/fit.json",
        best="results/{sweep}/partial/analysis/best_per_batch.csv",
        report="results/{sweep}/partial/analysis/report.md",
        plots=expand("results/{{sweep}}/partial/analysis/{plot}.png", plot=PLOTS),
    log:
        "results/{sweep}/logs/fit_partial.log",


rule partial:
    input:
        expand(rules.fit_partial.output.fit, sweep=SWEEP),
