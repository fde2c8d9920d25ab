#!/bin/bash
# Stage 2 of the shipped DCUnet-20: a gentle fine-tune on this project's 2-core CPU.
#
# Stage 1 (train_gpu.sh) trained DCUnet-10/16/20 for minutes on a lent GPU; DCUnet-20, the slowest
# per step, got the fewest steps (1447 x 24 crops against DCUnet-16's 3023 x 32). This continues it
# from those weights (`--init`) on the same shipped training split, on both CPU threads, for a
# 95-minute budget: batches of 8 x 2 s crops, Adam at a small learning rate (3e-5 after 10
# warm-up steps, cosine to 1e-6), so that it keeps annealing where stage 1 ended (1e-5) instead
# of being knocked out of its minimum. `--init` validates the starting weights at step 0, so
# best.pt (kept by validation PESQ) is never worse than the model it started from.
#
# A first attempt with a larger learning rate (2e-4) is described in data/checkpoints/README.md:
# on the test split it traded PESQ, CSIG and STOI for SI-SDR and SSNR, so it was not shipped.
# Usage: bash dcu/scripts/finetune_cpu.sh [RUNS_DIR]   (from the repository root)
set -eu
RUNS=${1:-runs}
mkdir -p "$RUNS"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
dcu train --arch DCUnet-20 --init dcunet20 --lr 3e-5 --min-lr 1e-6 --warmup-steps 10 \
    --batch-size 8 --steps 100000 --time-budget-minutes 95 --max-minutes 100 \
    --valid-reserve-seconds 40 --checkpoint-minutes 5 --out "$RUNS/ft20" > "$RUNS/ft20.log" 2>&1

# Ship: weights + config + metadata, no optimiser state. `--init` already recorded the stage the
# weights started from under metadata.previous_stage. `dcu checkpoint strip` writes atomically
# and never overwrites, so the copy is made beside the run and then moved over the shipped file.
dcu checkpoint strip "$RUNS/ft20/best.pt" "$RUNS/ft20/dcunet20.pt"
mv "$RUNS/ft20/dcunet20.pt" data/checkpoints/dcunet20.pt
cp "$RUNS/ft20/log.json" data/checkpoints/logs/dcunet20_finetune.json
dcu checkpoint info data/checkpoints/dcunet20.pt
