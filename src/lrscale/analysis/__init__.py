"""The analysis: a results CSV in, lr_opt per batch size, how it depends on B, and a verdict out.

  sweep_table   the results CSV (three formats) -> a Sweep, the loss table per batch size (pandas at the edge)
  loss_noise    σ of one run's final loss: pooled over the sweep, and per batch size when the seeds say so
  optima        one batch size's local fit: lr_opt, its SE, flags with reasons, the rule for lrs to add at an edge
  locators      the typed per-B result (Optimum) and its locator (the per-B cross-check of `surface`)
  forms         power law, McCandlish and surge fitted to lr_opt(B) and compared
  surface       one joint model of every run near the optima: β with a profile CI, a bend test (the answer)
  band          the near-optimal-band cross-check: each B's lr_opt as the centre of the runs near its best
  budget        what the sweep held fixed (steps or samples), epochs per B, overfitting at the optima
  verdict       the sentence, from the intervals only
  fit           ties them together: `analyse` (numbers) and `run_fit` (the CLI's entry: files in, files out)
  report, plots fit.json, best_per_batch.csv, report.md, the HTML pages and the plots: they only read the result

Imports numpy and scipy (pandas and matplotlib inside the functions that write tables and plots): the
DAG build and `lrscale status` never import this package.
"""
