# The ONE W&B run of the sweep: every curve replayed from the metrics files, then results.csv and
# the plots. Its own rule, last, so results.csv and the fit never depend on W&B.
rule wandb_log:
    input:
        csv=rules.aggregate.output.csv,
        fit=get_fit_files,
        metrics=get_metrics_files,
        plots=get_plot_files,
        horizons=get_horizon_summary,
    output:
        run="results/{sweep}/wandb_run.json",
    log:
        "results/{sweep}/logs/wandb.log",
    conda:
        "../../envs/lrscale.yaml"
    params:
        config=get_config_json,
    shell:
        "python -m lrscale wandb --config-json {params.config:q} --results {input.csv}"
        " --out {output.run} --plots {input.plots} -- {input.metrics} > {log} 2>&1"
