# Locate lr_opt per batch size, fit lr_opt = C * B^beta, plots and a verdict.
rule fit:
    input:
        csv="results/{sweep}/results.csv",
        metrics=get_metrics_files,
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
        args=get_analysis_args,
        out_dir=get_fit_out_dir,
        runs_dir="results/{sweep}/runs",
    shell:
        "python -m lrscale fit {input.csv} --out {params.out_dir}"
        " {params.args} --metrics-dir {params.runs_dir} > {log} 2>&1"


use rule fit as fit_partial with:
    input:
        csv="results/{sweep}/partial/results.csv",
        metrics=get_existing_metrics_files,
    output:
        fit="results/{sweep}/partial/analysis/fit.json",
        best="results/{sweep}/partial/analysis/best_per_batch.csv",
        report="results/{sweep}/partial/analysis/report.md",
        plots=expand("results/{{sweep}}/partial/analysis/{plot}.png", plot=PLOTS),
    log:
        "results/{sweep}/logs/fit_partial.log",


rule partial:
    input:
        f"{RESULTS}/partial/analysis/fit.json",
