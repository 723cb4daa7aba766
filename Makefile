# The README's two commands: `make run` (default sweep end to end) and `make test`; `make check` is
# the fast tier of the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: run test check lint bench reliability clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Default sweep: config/config.yaml, W&B offline, CPU unless a GPU is present.
run: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH WANDB_MODE=$${WANDB_MODE:-offline} \
		$(BIN)/snakemake --cores $(CORES) --profile profiles/default

# Every tier (what CI runs via .ci/run): real snakemake sweeps, kill -9, SLURM, the browser.
test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH LRSCALE_HYPOTHESIS=full $(BIN)/python -m pytest -q tests

# The fast tier (tests/conftest.py): logic, in-process CLI contracts, one process smoke per command,
# 25 hypothesis examples a property (300 in `make test`).
check: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH LRSCALE_HYPOTHESIS=fast $(BIN)/python -m pytest -q -m "not slow and not slurm and not browser" tests

lint: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/fit_accuracy.py
	$(BIN)/python bench/adaptive_design.py
	$(BIN)/python bench/wandb_replay.py

# Regenerates docs/RELIABILITY.md from the fault / fuzz / security tests (needs root for tmpfs).
reliability: $(STAMP)
	rm -f docs/reliability.jsonl
	LRSCALE_RELIABILITY_JSON=$(abspath docs/reliability.jsonl) LRSCALE_HYPOTHESIS=full PATH=$(abspath $(BIN)):$$PATH \
		$(BIN)/python -m pytest -q tests/test_reliability.py tests/test_fuzz.py tests/test_wandb.py \
		tests/test_train.py tests/test_secrets.py
	$(BIN)/python tests/reliability_report.py docs/reliability.jsonl docs/RELIABILITY.md

clean:
	rm -rf results .snakemake
