# lrscale: how does the optimal learning rate scale with batch size?
# One training job per (batch size, lr, seed) -> results.csv -> beta fit -> one W&B run.
# Run: snakemake --cores 2 (CPU) or snakemake --cores 8 --resources gpu=1 (one GPU).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/adaptive.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/wandb.smk"


localrules:
    all,
    aggregate,
    config_page,
    aggregate_partial,
    fit,
    fit_horizon,
    horizons,
    fit_partial,
    partial,
    plan_round,
    wandb_log,


rule all:
    default_target: True
    input:
        get_final_outputs,
