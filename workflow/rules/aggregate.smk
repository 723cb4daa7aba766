# results.csv from every metrics.json (validated: a corrupt file stops here, named).
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


# `snakemake partial`: results.csv + fit from the runs that exist, kept apart in partial/ so a
# partial analysis is never mistaken for the sweep's.
use rule aggregate as aggregate_partial with:
    input:
        metrics=get_existing_metrics_files,
    output:
        csv="results/{sweep}/partial/results.csv",
    log:
        "results/{sweep}/logs/aggregate_partial.log",
