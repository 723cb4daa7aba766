"""lrscale: how does the optimal learning rate scale with batch size?

Importing the package (and lrscale.config / lrscale.metrics) never imports torch, so the
Snakemake DAG build stays fast. Only the training job's modules touch torch: lrscale.train,
lrscale.tasks, lrscale.checkpoint, lrscale.faults and lrscale.probes (the gradient-noise
probes run inside the job).
"""

__version__ = "0.1.0"  # the one place (pyproject.toml reads it)

# The analysis plots, `<name>.png`: the fit draws them, the workflow declares them as outputs.
PLOTS = ["lr_opt_vs_batch", "loss_vs_lr", "loss_heatmap", "training_curves", "beta_bootstrap", "noise_vs_batch"]
# Per batch size, the training curves again, `training_curves_B<batch>.png` (the report groups them by B).
CURVES_PER_BATCH = "training_curves_B{batch}"
# The pages the fit writes for Snakemake's HTML report, `<name>.html`: the verdict with every table,
# results.csv and best_per_batch.csv as tables.
PAGES = ["report", "results_table", "best_per_batch_table"]
