# results.csv from every metrics.json (validated: a corrupt file stops here, named), then the
# one W&B run. W&B is its own rule so results.csv never depends on it and the run gets the plots.
rule aggregate:
    input:
        metrics=get_metrics_files,
    output:
        csv="results/{sweep}/results.csv",
    log:
        "results/{sweep}/logs/aggregate.log",
    conda:
        "../../envs/lrscale.yaml"
    shell:
        "python -m lrscale aggregate {input.metrics} --out {output.csv} > {log} 2>&1"


rule wandb_log:
    input:
        csv="results/{sweep}/results.csv",
        fit="results/{sweep}/analysis/fit.json",
        metrics=get_metrics_files,
        plots=get_plots,
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


# `snakemake partial`: results.csv + fit from the runs that exist, kept apart in partial/ so a
# partial analysis is never mistaken for the sweep's.
use rule aggregate as aggregate_partial with:
    input:
        metrics=get_existing_metrics_files,
    output:
        csv="results/{sweep}/partial/results.csv",
    log:
        "results/{sweep}/logs/aggregate_partial.log",
