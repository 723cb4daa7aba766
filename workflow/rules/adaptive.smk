# Adaptive sweeps (sweep.adaptive.rounds > 1): round r's runs are planned from every run of the
# rounds before it. A checkpoint, so the DAG is re-evaluated once the plan exists; the train rule
# and the metrics contract do not change. Never used by a fixed grid.
checkpoint plan_round:
    input:
        metrics=get_metrics_before_round,
        plans=get_plans_before_round,
    output:
        plan="results/{sweep}/rounds/round{round}.json",
    log:
        "results/{sweep}/logs/plan_round{round}.log",
    conda:
        "../../envs/lrscale.yaml"
    params:
        config=get_plan_config_json,
    shell:
        "python -m lrscale plan --config-json {params.config:q} --round {wildcards.round}"
        " --out {output.plan} --metrics {input.metrics} --plans {input.plans} > {log} 2>&1"
