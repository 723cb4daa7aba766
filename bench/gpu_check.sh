#!/usr/bin/env bash
# One prepared device run (lent GPU machine): install the wheels its image lacks, then the checks
# named in CHECKS (default: sweep):
#   sweep       bench/sweep_gpu.py: the Phase-2 sweep through real snakemake, seed-style / default /
#               fastest, 1,000 steps + one B at 5,000 (about 6 min on an H200: timeout_s 540)
#   throughput  bench/train_throughput.py (bf16 default, fp32 baseline, cudagraphs) + one CUDA job
# Prepare here: bash bench/device_wheels.sh; mkdir -p .devdata; cp ../shared/data/tinyshakespeare.txt .devdata/
# Usage there: bash bench/gpu_check.sh   (carry: .whl .devdata)
set -uo pipefail
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
if ! python3 -c "import jsonschema" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
corpus=.devdata/tinyshakespeare.txt
[ -f "$corpus" ] || corpus=""
if [[ ",${CHECKS:-sweep}," == *,sweep,* ]]; then
  python3 bench/sweep_gpu.py --corpus "${corpus:?sweep needs .devdata/tinyshakespeare.txt}" --steps "${STEPS:-1000}" \
    --work /tmp/sweep_gpu_work --out "$OUT/sweep_gpu.json" 2>&1 | tee "$OUT/sweep_gpu.log"
fi
[[ ",${CHECKS:-sweep}," == *,throughput,* ]] || exit 0
python3 bench/train_throughput.py --steps "${THROUGHPUT_STEPS:-300}" --reps "${REPS:-3}" ${corpus:+--corpus $corpus} \
  --variants "${VARIANTS:-default,fp32,compile}" --out "$OUT/train_throughput.json" 2>&1 | tee "$OUT/train_throughput.txt"
# One real CUDA job through the CLI: schema-valid metrics, bf16, device recorded.
printf 'task: {name: char_lm, seq_len: 256, val_tokens: 16384, data: {path: %s}}\nbudget: {unit: steps, value: 300}\n' \
  "${corpus:-missing}" > /tmp/gpu_cfg.yaml
python3 -m lrscale train --config /tmp/gpu_cfg.yaml --batch-size 64 --lr 0.003 --out "$OUT/metrics_cuda.json" --device cuda 2>&1 | tail -3
python3 -c "
import json, sys; sys.path.insert(0, 'src')
from lrscale import metrics
m = metrics.read('$OUT/metrics_cuda.json')
print('cuda job:', m['device'], m['device_name'], m['precision'], 'final_val_loss', round(m['final_val_loss'], 4), 'steps/s', round(m['steps_per_s'], 1))
"
