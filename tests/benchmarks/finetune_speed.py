"""How fast is a fine-tuning step, from every shipped model, at every precision?

Not a unit test (minutes of CPU). One thread; CPU seconds of this process per step (other
processes on a shared machine do not count), the median of ``--steps`` steps after one warm-up
step. For each model it times, side by side in one process: starting from the shipped weights
(``--init``) and from fresh random weights (scratch), at fp32 and bf16, with denormal floats
flushed (what ``dcu train`` sets) and without. Each step is a real training step (wSDR, Adam) on
a fixed batch of real 2 s crops of the shipped training pairs. It also counts the subnormal
floats among the values that reach the convolutions (inputs and weights), the usual reason a
CPU step is suddenly 10-100x slower::

    python tests/benchmarks/finetune_speed.py                      # DCUnet-10, -16 and -20
    python tests/benchmarks/finetune_speed.py --archs 10 --steps 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import dcu  # noqa: E402
from dcu.data import list_pairs  # noqa: E402
from dcu.audio import load_audio  # noqa: E402
from dcu.engine import optimize  # noqa: E402
from dcu.losses import wsdr_loss  # noqa: E402
from dcu.stft import SAMPLE_RATE  # noqa: E402


def real_batch(batch: int = 8, seconds: float = 2.0):
    """``(noisy, clean)``: ``batch`` crops of the first shipped training pairs (fixed)."""
    n, noisy, clean = int(seconds * SAMPLE_RATE), [], []
    for noisy_path, clean_path in list_pairs("train")[:batch]:
        x, y = load_audio(noisy_path), load_audio(clean_path)
        x, y = np.pad(x, (0, max(0, n - x.size)))[:n], np.pad(y, (0, max(0, n - y.size)))[:n]
        noisy.append(x)
        clean.append(y)
    return torch.from_numpy(np.stack(noisy)), torch.from_numpy(np.stack(clean))


def subnormal_share(model, noisy) -> float:
    """Share of subnormal float32 values among the convolution inputs and weights of one forward."""
    tiny = torch.finfo(torch.float32).tiny
    counts = [0, 0]

    def hook(module, args):
        for t in list(args[:1]) + [p for p in module.parameters(recurse=False)]:
            if torch.is_tensor(t) and t.is_floating_point():
                t = t.detach().float()
                counts[0] += int(((t != 0) & (t.abs() < tiny)).sum())
                counts[1] += t.numel()

    convs = [m for m in model.modules() if "Conv" in type(m).__name__]
    handles = [m.register_forward_pre_hook(hook) for m in convs]
    with torch.no_grad():
        model(noisy)
    for h in handles:
        h.remove()
    return counts[0] / max(1, counts[1])


def time_steps(arch: str, start: str, precision: str, flush: bool, steps: int, batch) -> dict:
    torch.set_flush_denormal(flush)
    torch.manual_seed(0)
    model = dcu.DCUnet(arch)
    if start == "shipped":
        model.load_state_dict(dcu.load(f"dcunet{arch.split('-')[1]}").state_dict())
    optimize(model, precision).train()
    noisy, clean = batch
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        t = time.process_time()
        opt.zero_grad(set_to_none=True)
        wsdr_loss(noisy, clean, model(noisy)).backward()
        opt.step()
        if i:  # the first step builds oneDNN's kernels
            times.append(time.process_time() - t)
    return {"arch": arch, "start": start, "precision": precision, "flush_denormal": flush,
            "seconds_per_step": statistics.median(times), "subnormal_share": subnormal_share(model, noisy)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="10,16,20", help="sizes, e.g. 10,16")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration (after a warm-up)")
    p.add_argument("--json", help="write the rows here too")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    batch = real_batch()
    rows = []
    print(f"{'model':10s} {'start':8s} {'prec':5s} {'flush':5s} {'s/step':>7s} {'subnormal':>9s}")
    for n in args.archs.split(","):
        for start in ("shipped", "scratch"):
            for precision in ("fp32", "bf16"):
                for flush in (True, False):
                    row = time_steps(f"DCUnet-{n}", start, precision, flush, args.steps, batch)
                    rows.append(row)
                    print(f"{row['arch']:10s} {start:8s} {precision:5s} {str(flush):5s} "
                          f"{row['seconds_per_step']:7.2f} {row['subnormal_share']:9.1e}", flush=True)
    torch.set_flush_denormal(False)
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "threads": 1, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
