"""What the ``dcu train`` loop adds to the model's own training step: data loading, on-the-fly
remixing, learning-rate schedule, gradient checks, logging.

Not a unit test (minutes of CPU). One thread, CPU seconds of this process, so other processes on
a shared machine do not count::

    python tests/benchmarks/train_loop_overhead.py --arch DCUnet-10 --steps 30

It times, alternately: (1) the model alone, ``dcu.jobs.speed.training_step`` on a fixed batch of
8 x 2 s (forward, wSDR loss, backward, Adam), and (2) ``Trainer.run`` for ``--steps`` steps on the
shipped training set (its one validation, on one file, and the one-off loading of the
training audio are timed separately and subtracted), and
prints the ratio per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from dcu.training import trainer as train_module  # noqa: E402
from dcu.engine import optimize, tune_cpu  # noqa: E402
from dcu.jobs.speed import training_step  # noqa: E402
from dcu.training import TrainConfig, Trainer  # noqa: E402
from dcu.unet import DCUnet  # noqa: E402


def loop_seconds_per_step(arch: str, steps: int, precision: str) -> float:
    """CPU seconds per step of ``Trainer.run``, less its one validation and the one-off loading
    of the training set into memory (both timed and subtracted)."""
    spent = {"validate": 0.0, "make_datasets": 0.0}
    real = {name: getattr(train_module, name) for name in spent}

    def timed(name):
        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return real[name](*args, **kwargs)
            finally:
                spent[name] += time.process_time() - start
        return wrapper

    for name in spent:
        setattr(train_module, name, timed(name))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(arch=arch, steps=steps, valid_every=steps, valid_files=1,
                              precision=precision, checkpoint_minutes=1e9, out=str(Path(tmp) / "r"))
            trainer = Trainer(cfg, progress=False)
            start = time.process_time()
            trainer.run()
            total = time.process_time() - start
    finally:
        for name, fn in real.items():
            setattr(train_module, name, fn)
    return (total - sum(spent.values())) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="DCUnet-10")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--precision", default="auto")
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args(argv)
    tune_cpu(threads=1)
    torch.manual_seed(0)
    step = training_step(optimize(DCUnet(args.arch), args.precision))
    step()
    model_alone, loop = [], []
    for _ in range(args.reps):
        start = time.process_time()
        for _ in range(5):
            step()
        model_alone.append((time.process_time() - start) / 5)
        loop.append(loop_seconds_per_step(args.arch, args.steps, args.precision))
    m, t = statistics.median(model_alone), statistics.median(loop)
    print(f"{args.arch} ({args.precision}), one thread, CPU seconds per step of 8 x 2 s: "
          f"model alone {m:.3f} s, dcu train loop {t:.3f} s: the loop adds {100 * (t / m - 1):+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
