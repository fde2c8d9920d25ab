#!/bin/bash
# GPU training driver: trains DCUnet-10/16/20 concurrently on one GPU within a wall-clock budget.
# Usage: bash .gpu/run.sh BUDGET_MINUTES  (writes model-only checkpoints + logs to $OUT)
set -u
BUDGET=${1:-7}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ! python3 -c "import soundfile" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  (cd /tmp && timeout 90 python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/site $OLDPWD/.gpu/pesq-0.0.4.tar.gz > /tmp/pesq.log 2>&1 && echo "pesq built" || echo "pesq not built; validating by SI-SDR")
else
  export PYTHONPATH=$PWD
fi
python3 -c "import torch, soundfile; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'); import dcu; print('dcu ok')" || exit 1
python3 -c "import pesq; print('pesq', pesq.__file__)" 2>&1 | tail -1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null
declare -A BS=( [10]=${BS10:-32} [16]=${BS16:-32} [20]=${BS20:-24} )
for n in 10 16 20; do
  python3 -m dcu train --arch DCUnet-$n --batch-size ${BS[$n]} --lr ${LR:-1e-3} --warmup-steps 200 \
    --items-per-file 16 --workers 4 --time-budget-minutes $BUDGET --max-minutes $(python3 -c "print($BUDGET+0.7)") \
    --steps 100000 --out /tmp/runs/dcunet$n ${EXTRA:-} > "$OUT/train$n.log" 2>&1 &
done
wait
python3 - <<'PY'
import os, shutil, json
import dcu, torch
out = os.environ.get("OUT", "/tmp/out")
for n in (10, 16, 20):
    run = f"/tmp/runs/dcunet{n}"
    for name in ("best.pt",):
        p = os.path.join(run, name)
        if not os.path.exists(p):
            print("missing", p); continue
        ck = torch.load(p, map_location="cpu", weights_only=True)
        ck.pop("train_state", None)
        torch.save(ck, os.path.join(out, f"dcunet{n}.pt"))
        print(n, ck["metadata"]["step"], ck["metadata"]["valid"])
    if os.path.exists(os.path.join(run, "log.json")):
        shutil.copy(os.path.join(run, "log.json"), os.path.join(out, f"log{n}.json"))
PY
cat "$OUT"/train*.log > "$OUT/train_logs.txt" && rm "$OUT"/train*.log
ls -la "$OUT"
