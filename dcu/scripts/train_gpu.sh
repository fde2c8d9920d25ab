#!/bin/bash
# GPU training driver: trains DCUnet-10/16/20 concurrently on one GPU within a wall-clock budget.
# Usage: bash dcu/scripts/train_gpu.sh BUDGET_MINUTES   (from the repository root)
# Needs dcu installed with its dependencies (`pip install -e .`); without the `pesq` package the
# best checkpoint is chosen by validation SI-SDR. Writes weights-only checkpoints
# (dcunet10/16/20.pt, `dcu checkpoint strip`) and the training logs to $OUT.
set -eu
BUDGET=${1:-7}
OUT=${OUT:-/tmp/out}
RUNS=${RUNS:-/tmp/runs}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c "import torch, soundfile, dcu; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', 'dcu', dcu.__version__)"
python3 -c "import pesq" 2>/dev/null && echo "pesq available" || echo "pesq not installed; validating by SI-SDR"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null || true
declare -A BS=( [10]=${BS10:-32} [16]=${BS16:-32} [20]=${BS20:-24} )
for n in 10 16 20; do
  python3 -m dcu train --arch DCUnet-$n --batch-size ${BS[$n]} --lr ${LR:-1e-3} --warmup-steps 200 \
    --items-per-file 16 --workers 4 --time-budget-minutes $BUDGET --max-minutes $(python3 -c "print($BUDGET+0.7)") \
    --steps 100000 --out "$RUNS/dcunet$n" ${EXTRA:-} > "$OUT/train$n.log" 2>&1 &
done
wait
for n in 10 16 20; do
  if [ -f "$RUNS/dcunet$n/best.pt" ]; then
    python3 -m dcu checkpoint strip "$RUNS/dcunet$n/best.pt" "$OUT/dcunet$n.pt"
    python3 -m dcu checkpoint info "$OUT/dcunet$n.pt" | sed -n '3,4p'
  else
    echo "missing $RUNS/dcunet$n/best.pt"
  fi
  if [ -f "$RUNS/dcunet$n/log.json" ]; then cp "$RUNS/dcunet$n/log.json" "$OUT/log$n.json"; fi
done
cat "$OUT"/train*.log > "$OUT/train_logs.txt" && rm "$OUT"/train*.log
ls -la "$OUT"
