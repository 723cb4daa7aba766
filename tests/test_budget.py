"""Issue 24.1: what a sweep held fixed, and when β mixes batch noise with data repetition
(lrscale.analysis.budget), read from results.csv's num_steps, epochs and overfit columns."""

import csv
import math

from lrscale.analysis import budget, fit

BS, LRS = (8, 32, 128, 512), [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def write_results(path, steps, epochs=None, overfit=None):
    """A 1-seed sweep with lr_opt ∝ B^0.5 (centred on 1e-3 at B = 64); steps(B), epochs(B) and
    overfit(B, lr) fill those columns (None: the column is absent)."""
    cols = ["batch_size", "lr", "final_val_loss", "train_loss_std", "num_steps", "seed", "diverged"]
    cols += (["epochs"] if epochs else []) + (["overfit"] if overfit else [])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for b in BS:
            for lr in LRS:
                d = math.log10(lr) + 3 - 0.5 * math.log10(b / 64)
                row = {"batch_size": b, "lr": lr, "final_val_loss": 1 + b**-0.5 + 0.2 * d * d, "train_loss_std": 0.01,
                       "num_steps": steps(b), "seed": 0, "diverged": False}
                row.update({"epochs": epochs(b)} if epochs else {})
                row.update({"overfit": overfit(b, lr)} if overfit else {})
                w.writerow(row)
    return path


def test_fixed_steps_with_repeated_data_is_said_first(tmp_path):
    path = write_results(tmp_path / "r.csv", steps=lambda b: 1000, epochs=lambda b: b * 1000 / 51200)
    r = fit.analyse(fit.read_table(path), bootstrap=0)
    assert (r["budget"]["unit"], r["budget"]["value"]) == ("steps", 1000)
    assert r["budget"]["epochs"] == {"8": 0.15625, "32": 0.625, "128": 2.5, "512": 10.0}
    assert r["budget"]["repetition"] and r["budget"]["mixes_repetition"]
    caveats = r["verdict"].split("\n")[2].split("; ")
    assert caveats[1].startswith("budget: 1000 steps per run at every B")
    assert caveats[2] == ("β here mixes batch noise with data repetition: B=8 makes 0.16 pass(es) over the "
                          "training data, B=512 10. Every batch size read.")


def test_fixed_samples_and_fresh_data_only_name_the_budget(tmp_path):
    path = write_results(tmp_path / "r.csv", steps=lambda b: math.ceil(100000 / b))
    r = fit.analyse(fit.read_table(path), bootstrap=0)
    assert r["budget"]["unit"] == "samples" and r["budget"]["epochs"] == {} and not r["budget"]["mixes_repetition"]
    assert "; budget: about 1e+05 samples (or tokens' worth) per run at every B. " in r["verdict"]
    assert "repetition" not in r["verdict"]


def test_an_optimum_on_overfitting_runs_is_said_and_a_mixed_budget_is_not_named(tmp_path):
    path = write_results(tmp_path / "r.csv", steps=lambda b: 1000 + b, epochs=lambda b: 0.9 if b < 512 else 1.5,
                         overfit=lambda b, lr: b == 512)
    r = fit.analyse(fit.read_table(path), bootstrap=0)
    assert r["budget"]["unit"] is None and not r["budget"]["repetition"]  # 0.9 to 1.5 passes: within 2x
    assert r["budget"]["overfit_at_optimum"] == [512] == r["budget"]["overfit_repeated"]
    assert ("β here mixes batch noise with data repetition: the optimum of B=512 sits on runs that overfit (their val "
            "loss rose from its minimum after more than one pass)") in r["verdict"]
    assert "budget:" not in r["verdict"]
    assert budget.sentence({**r["budget"], "overfit_at_optimum": [], "overfit_repeated": []}) == ""


def test_a_val_loss_rising_within_one_pass_is_not_called_repetition(tmp_path):
    path = write_results(tmp_path / "r.csv", steps=lambda b: 1000, overfit=lambda b, lr: b == 128)  # fresh data
    r = fit.analyse(fit.read_table(path), bootstrap=0)
    assert r["budget"]["overfit_at_optimum"] == [128] and r["budget"]["overfit_repeated"] == []
    assert not r["budget"]["mixes_repetition"] and "repetition" not in r["verdict"]
    assert "the val loss of the runs at the optimum of B=128 rose from its minimum by the end within one pass" in r["verdict"]


def test_the_report_says_which_co_scaling_rules_beta_was_measured_under():
    from lrscale.analysis import report

    rules = {"reference_batch_size": 64, "reference_lr": None, "beta2": True, "eps": True, "weight_decay": False}
    scaled = budget.optimizer_rules([{"config": {"optimizer": {"scale_with_batch": rules}}}])
    assert scaled == {"rules": ["beta2", "eps"], "reference_batch_size": 64}
    fixed = {"unit": "steps", "value": 1000, "epochs": {}, "repetition": False, "overfit_at_optimum": [],
             "overfit_repeated": [], "mixes_repetition": False}
    text = report.budget_text({"budget": fixed, "optimizer_scaling": scaled})
    assert text == ("Budget: 1000 steps per run at every B (the larger B see more data). Optimizer co-scaled with B "
                    "from B_ref = 64: β₂ (constant half-life in samples), ε (square-root rule); β here is measured "
                    "under these rules.\n\n")
    plain = budget.optimizer_rules([{"config": {"optimizer": {"name": "adamw"}}}])  # metrics written before the rules
    assert budget.optimizer_sentence(plain) == "Optimizer: the same settings at every B (no co-scaling rule)."
    assert budget.optimizer_rules([]) is None and budget.optimizer_sentence(None) == ""
    mixed = budget.optimizer_rules([{"config": {"optimizer": {"scale_with_batch": rules}}},
                                    {"config": {"optimizer": {"scale_with_batch": None}}}])
    assert budget.optimizer_sentence(mixed).startswith("Optimizer: the runs were trained under different co-scaling")
