# One training job per (batch size, lr, seed). Snakemake assigns no GPU device itself; jobs ask
# for `gpu=1` so `--resources gpu=K` caps how many run at once (CPU runs omit --resources).
rule train:
    output:
        metrics=f"results/{{sweep}}/{RUN_METRICS}",
    log:
        f"results/{{sweep}}/{RUN_LOG}",
    benchmark:
        f"results/{{sweep}}/{RUN_BENCHMARK}"
    conda:
        "../../envs/lrscale.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        lr=get_lr,
        train_config=get_train_config_json,
        checkpoint_dir=get_checkpoint_dir,
    shell:
        "python -m lrscale train --config-json {params.train_config:q}"
        " --batch-size {wildcards.batch} --lr {params.lr} --seed {wildcards.seed}"
        " --out {output.metrics} --checkpoint-dir {params.checkpoint_dir}"
        " --threads {threads} > {log} 2>&1"


# The same job at one horizon of several (budget.values): runs/B…_LR…/D{horizon}/seed…/. Rules of
# their own, not `use rule train`, because they add --horizon to the command: Snakemake reruns every
# finished job of a rule whose command or params change, so `train` stays exactly as it was.
if not BRANCHED:

    rule train_horizon:
        output:
            metrics=f"results/{{sweep}}/{AT_HORIZON(RUN_METRICS)}",
        log:
            f"results/{{sweep}}/{AT_HORIZON(RUN_LOG)}",
        benchmark:
            f"results/{{sweep}}/{AT_HORIZON(RUN_BENCHMARK)}"
        conda:
            "../../envs/lrscale.yaml"
        threads: 1
        resources:
            gpu=1,
        params:
            lr=get_lr,
            train_config=get_train_config_json,
            checkpoint_dir=get_checkpoint_dir,
        shell:
            "python -m lrscale train --config-json {params.train_config:q}"
            " --batch-size {wildcards.batch} --lr {params.lr} --seed {wildcards.seed}"
            " --horizon {wildcards.horizon}"
            " --out {output.metrics} --checkpoint-dir {params.checkpoint_dir}"
            " --threads {threads} > {log} 2>&1"


# wsd with several horizons: ONE warmup + stable phase per (B, lr, seed), a snapshot where each
# horizon's cool-down starts, then one cool-down job per horizon from its snapshot (a failed
# cool-down reruns alone). lrscale.branches says why a branch equals a standalone run.
if BRANCHED:

    rule stable_phase:
        output:
            snapshots=expand(
                f"results/{{sweep}}/{lrscale_config.STABLE_DIR}{lrscale_config.SNAPSHOT}",
                horizon=HORIZONS,
                allow_missing=True,
            ),
        log:
            f"results/{{sweep}}/{lrscale_config.STABLE_LOG}",
        benchmark:
            f"results/{{sweep}}/{lrscale_config.STABLE_BENCHMARK}"
        conda:
            "../../envs/lrscale.yaml"
        threads: 1
        resources:
            gpu=1,
        params:
            lr=get_lr,
            train_config=get_sweep_train_config_json,
            checkpoint_dir=get_stable_checkpoint_dir,
            out_dir=get_stable_dir,
        shell:
            "python -m lrscale stable --config-json {params.train_config:q}"
            " --batch-size {wildcards.batch} --lr {params.lr} --seed {wildcards.seed}"
            " --out-dir {params.out_dir} --checkpoint-dir {params.checkpoint_dir}"
            " --threads {threads} > {log} 2>&1"

    rule cooldown:
        input:
            snapshot=f"results/{{sweep}}/{lrscale_config.STABLE_DIR}{lrscale_config.SNAPSHOT}",
        output:
            metrics=f"results/{{sweep}}/{AT_HORIZON(RUN_METRICS)}",
        log:
            f"results/{{sweep}}/{AT_HORIZON(RUN_LOG)}",
        benchmark:
            f"results/{{sweep}}/{AT_HORIZON(RUN_BENCHMARK)}"
        conda:
            "../../envs/lrscale.yaml"
        threads: 1
        resources:
            gpu=1,
        params:
            lr=get_lr,
            train_config=get_sweep_train_config_json,
            checkpoint_dir=get_checkpoint_dir,
        shell:
            "python -m lrscale train --config-json {params.train_config:q}"
            " --batch-size {wildcards.batch} --lr {params.lr} --seed {wildcards.seed}"
            " --horizon {wildcards.horizon} --branch-from {input.snapshot}"
            " --out {output.metrics} --checkpoint-dir {params.checkpoint_dir}"
            " --threads {threads} > {log} 2>&1"
