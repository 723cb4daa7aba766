"""Golden files of the fit: inputs that cover each way the analysis runs, and its outputs on them.

    python tests/golden/build.py --inputs   # (once) write the input CSVs from their sources
    python tests/golden/build.py --expected # write expected/ from the code as it is now

Run `--expected` only when a change of the fit's numbers is intended (and say so in the commit);
tests/test_golden.py checks that the outputs stay byte-identical (fit.json: up to 1e-12 and added
keys). The inputs are committed, so they never depend on a numpy version's random streams. The expected
files were written with OpenBLAS's SkylakeX kernels: on a CPU with AVX-512, run --expected with
OPENBLAS_CORETYPE=SkylakeX, as tests/conftest.py pins it for the tests.

Cases: demo (the CPU demo's results.csv, 7 B x 7 lrs x 2 seeds), one_seed (its seed 0), adaptive
(a two-round adaptive sweep of tests/test_adaptive_workflow.py's config, with its round plans),
seed_study (the seed study's 7 columns, one run per (B, lr), SE from train_loss_std) and three
sweeps drawn as bench/fit_accuracy.py draws them: power_law_sym_2seeds, mccandlish_asym_1seed
(as a W&B summary export) and falling_noise_asym_2seeds (σ ∝ B^-1/2, one B flat).
"""

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CASES = ["demo", "one_seed", "adaptive", "seed_study", "power_law_sym_2seeds", "mccandlish_asym_1seed",
         "falling_noise_asym_2seeds"]
OUTPUTS = ["fit.json", "best_per_batch.csv", "report.md"]


def input_csv(case) -> Path:
    """Relative to the repository (run from there): fit.json and report.md name it."""
    return HERE.relative_to(REPO) / case / "results.csv"


def plan_files(case) -> list:
    return sorted((HERE.relative_to(REPO) / case / "rounds").glob("round*.json"))


def fit_case(case, out_dir) -> dict:
    """The fit of one case, written to out_dir, as the workflow's fit rule runs it (default settings)."""
    from lrscale.analysis import fit

    return fit.run_fit(input_csv(case), out_dir=out_dir, plans=plan_files(case))


def _write_rows(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _synthetic(case, kind, param, shape, seeds, sigma_slope, flat_b, seed):
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    import fit_accuracy as fa

    rng = np.random.default_rng(seed)
    sweep = fa.synthetic(fa.truth(kind, param), shape, 0.01, seeds, rng, flat_b=flat_b, sigma_slope=sigma_slope)
    rows = [(b, repr(float(lr)), s, "" if not np.isfinite(v) else repr(float(v)))
            for b in sweep.batch_sizes for s in range(seeds) for lr, v in zip(sweep.lrs[b], sweep.losses[b][s])]
    if case.startswith("mccandlish"):  # the W&B summary export format
        _write_rows(input_csv(case), ["summary/batch_size", "summary/lr", "summary/final_val_loss"],
                    [(b, lr, v if v else "NaN") for b, lr, _, v in rows])
    else:
        _write_rows(input_csv(case), ["batch_size", "lr", "seed", "final_val_loss", "diverged"],
                    [(b, lr, s, v, "False" if v else "True") for b, lr, s, v in rows])


def _seed_study(demo_rows):
    """The seed study's columns, one run per (B, lr): the demo's seed-1 runs."""
    cols = ["batch_size", "lr", "final_train_loss", "final_val_loss", "train_loss_std", "converged", "num_steps",
            "timestamp"]
    _write_rows(input_csv("seed_study"), cols, [[r[c] for c in cols] for r in demo_rows if r["seed"] == "1"])


def write_inputs(demo_csv, adaptive_dir):
    for case in CASES:
        (HERE / case).mkdir(exist_ok=True)
    shutil.copyfile(demo_csv, input_csv("demo"))
    with open(demo_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    _write_rows(input_csv("one_seed"), header, [[r[c] for c in header] for r in rows if r["seed"] == "0"])
    _seed_study(rows)
    (HERE / "adaptive" / "rounds").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(adaptive_dir) / "results.csv", input_csv("adaptive"))
    for plan in sorted((Path(adaptive_dir) / "rounds").glob("round*.json")):
        shutil.copyfile(plan, HERE / "adaptive" / "rounds" / plan.name)
    _synthetic("power_law_sym_2seeds", "power_law", 0.5, "sym", 2, 0.0, None, 1)
    _synthetic("mccandlish_asym_1seed", "mccandlish", 128, "asym", 1, 0.0, None, 2)
    _synthetic("falling_noise_asym_2seeds", "power_law", 1.0, "asym", 2, -0.5, 16, 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", nargs=2, metavar=("DEMO_RESULTS_CSV", "ADAPTIVE_SWEEP_DIR"))
    ap.add_argument("--expected", action="store_true")
    args = ap.parse_args()
    os.chdir(REPO)
    if args.inputs:
        write_inputs(*args.inputs)
    if args.expected:
        for case in CASES:
            out = HERE / case / "expected"
            fit_case(case, out)
            for extra in out.iterdir():  # keep only the compared outputs (the plots are images)
                if extra.name not in OUTPUTS:
                    extra.unlink()
            fit = json.loads((out / "fit.json").read_text())
            print(f"{case}: beta={fit['beta']} n_used={fit['n_used']}")


if __name__ == "__main__":
    main()
