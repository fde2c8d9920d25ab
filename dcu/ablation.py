"""The paper's ablations rerun at laptop scale: mask x loss, and complex vs real network.

    python -m dcu.ablation --out data/results/ablation.json [--steps N] [--quick]

Choi et al. compare the three masks (UBD, BDSS, BDT) under three losses (spectral MSE, SDR,
weighted SDR), and the complex U-Net against a real-valued twin with as many parameters. Each
of their runs trains a DCUnet for hours on a GPU. Here every configuration trains the *same*
small U-Net (:data:`SMALL`, defined below as data, not in the architecture table) from the same
initial weights on the same crops for a fixed number of steps, then is scored on a fixed subset
of the shipped test split with :func:`dcu.evaluate.evaluate_pairs`. One extra run repeats the
proposed configuration with another seed, which measures how much of a difference between two
rows is just the luck of one run.

At this scale (minutes per run, 1 s crops, one seed) differences smaller than the seed-to-seed
difference mean nothing; the book says so next to the table.

The result file is rewritten atomically after every configuration, and a second call with the
same settings skips configurations already in it, so an interrupted run is resumed by running
the same command again.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dcu.architectures import Architecture

__all__ = ["SMALL", "AblationRun", "ablation_runs", "run_ablation", "ablation_cli"]

_K75, _K53 = (7, 5), (5, 3)

#: A 4+4-layer DCUnet-10 look-alike with half the channels (about 0.27 M real parameters, a
#: fifth of DCUnet-10): small enough to train ten times on 2 CPU cores in half an hour.
SMALL = Architecture(
    "ablation-small",
    encoders=((1, 16, _K75, (2, 2)), (16, 32, _K75, (2, 2)), (32, 32, _K53, (2, 2)),
              (32, 32, _K53, (2, 1))),
    decoders=((32, 32, _K53, (2, 1)), (64, 32, _K53, (2, 2)), (64, 16, _K75, (2, 2)),
              (32, 1, _K75, (2, 2))),
)


@dataclass(frozen=True)
class AblationRun:
    """One row of the ablation: what is varied; everything else is shared (see ``SETTINGS``)."""

    name: str
    mask: str
    loss: str
    network: str = "complex"
    seed: int = 0


def ablation_runs() -> list[AblationRun]:
    """The 3 x 3 mask x loss grid (complex network), the real twin, and a second seed.

    The proposed configuration (BDT mask, wSDR loss) and the runs that only make sense next to
    it (real twin, second seed) come first, so an interrupted ablation has its reference.
    """
    grid = [AblationRun(f"{mask}/{loss}", mask, loss)
            for loss in ("wSDR", "SDR", "MSE") for mask in ("BDT", "BDSS", "UBD")]
    return [grid[0], AblationRun("BDT/wSDR real", "BDT", "wSDR", network="real"),
            AblationRun("BDT/wSDR seed 1", "BDT", "wSDR", seed=1), *grid[1:]]


#: Training settings shared by every run (the paper's are in PAPER.md; ours are far smaller).
SETTINGS = {"steps": 120, "segment_seconds": 1.0, "batch_size": 4, "lr": 1e-3,
            "warmup_steps": 12, "test_files": 40, "data": "shipped"}

QUICK = {"steps": 3, "segment_seconds": 1.0, "batch_size": 2, "lr": 1e-3, "warmup_steps": 1,
         "test_files": 3, "valid_files": 1, "data": "shipped"}


def test_subset(n: int) -> list[tuple[str, str, str]]:
    """``n`` evenly spaced pairs of the shipped test split as ``(name, clean, noisy)`` paths."""
    from dcu.data import list_pairs

    pairs = list_pairs("test")
    idx = np.unique(np.linspace(0, len(pairs) - 1, min(n, len(pairs))).round().astype(int))
    return [(Path(pairs[i][1]).stem, str(pairs[i][1]), str(pairs[i][0])) for i in idx]


def _round(x) -> float | None:
    x = float(x)
    return round(x, 4) if np.isfinite(x) else None


def _score(pairs, enhance, jobs: int, progress: bool) -> dict:
    """Summary (mean, ci95, n per metric) and per-file values of one enhancer on ``pairs``."""
    from dcu.evaluate import evaluate_pairs

    summary, rows = evaluate_pairs(pairs, enhance, jobs=jobs, progress=progress)
    summary = {m: {k: (_round(v) if k != "n" else v) for k, v in s.items()}
               for m, s in summary.items()}
    files = {m: [_round(r[m]) for r in rows] for m in summary}
    return {"summary": summary, "files": files}


def train_one(run: AblationRun, settings: dict, arch, workdir: Path, progress: bool):
    """Train one run; returns ``(model in eval mode, mean training loss of the run, seconds)``.

    Validation (``valid_files`` files, default 2) happens once, at the end.
    """
    from dcu.train import TrainConfig, Trainer

    steps = settings["steps"]
    cfg = TrainConfig(arch=arch, mask=run.mask, loss=run.loss, network=run.network,
                      seed=run.seed, segment_seconds=settings["segment_seconds"],
                      batch_size=settings["batch_size"], steps=steps, lr=settings["lr"],
                      warmup_steps=settings["warmup_steps"], valid_every=steps,
                      valid_files=settings.get("valid_files", 2),
                      checkpoint_minutes=1e9, device="cpu", data=settings["data"],
                      out=str(workdir))
    start = time.time()
    trainer = Trainer(cfg, progress=progress)
    trainer.run()
    return trainer.model.eval(), trainer.history[-1]["train_loss"], time.time() - start


def _write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)


def _meta(settings: dict, arch, pairs) -> dict:
    spec = arch if isinstance(arch, Architecture) else None
    return {"settings": settings,
            "arch": asdict(spec) if spec else str(arch),
            "test_files": [p[0] for p in pairs],
            "torch_version": torch.__version__.split("+")[0],
            "python_version": platform.python_version(),
            "torch_threads": torch.get_num_threads()}


def run_ablation(out, settings: dict | None = None, runs: list[AblationRun] | None = None,
                 arch=SMALL, jobs: int = 2, progress: bool = True) -> dict:
    """Train and score every run not yet in ``out`` (JSON), rewriting ``out`` after each.

    Returns the result dictionary: ``{"meta": {...}, "input": {...}, "runs": [...]}`` where
    ``input`` scores the unprocessed noisy files and each run holds its settings, parameter
    count, training seconds, mean training loss, a ``summary`` (per metric: mean, ci95, n)
    and ``files`` (per metric: one value per test file, in ``meta["test_files"]`` order).

    Raises:
        ValueError: ``out`` exists but was made with other settings (it is never overwritten).
    """
    out = Path(out)
    settings = {**SETTINGS, **(settings or {})}
    runs = ablation_runs() if runs is None else runs
    pairs = test_subset(settings["test_files"])
    meta = _meta(settings, arch, pairs)
    if out.exists():
        try:
            result = json.loads(out.read_text())
            same = result["meta"]["settings"] == meta["settings"] and \
                result["meta"]["arch"] == json.loads(json.dumps(meta["arch"]))
        except (ValueError, KeyError, TypeError):
            same = False
        if not same:
            raise ValueError(f"{out}: exists and was not made by dcu.ablation with these "
                             "settings; choose another --out (it is never overwritten)")
    else:
        result = {"meta": meta, "input": _score(pairs, None, jobs, progress), "runs": []}
        _write(out, result)
    done = {r["name"] for r in result["runs"]}
    for run in runs:
        if run.name in done:
            continue
        if progress:
            print(f"== {run.name}", flush=True)
        with tempfile.TemporaryDirectory(prefix="dcu-ablation-") as work:
            model, train_loss, seconds = train_one(run, settings, arch, Path(work), progress)
        scored = _score(pairs, model.enhance, jobs, progress)
        result["runs"].append({**asdict(run), "num_parameters": model.num_parameters(),
                               "train_seconds": round(seconds, 1),
                               "train_loss_mean": _round(train_loss), **scored})
        _write(out, result)
    return result


def ablation_cli(argv: list[str]) -> int:
    """``dcu ablation`` / ``python -m dcu.ablation``: run (or resume) the ablation."""
    p = argparse.ArgumentParser(prog="dcu ablation", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="result JSON (resumed if it exists)")
    p.add_argument("--steps", type=int,
                   help=f"training steps per run (default {SETTINGS['steps']})")
    p.add_argument("--test-files", type=int, help="test files scored per run "
                   f"(default {SETTINGS['test_files']})")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 configurations, 3 steps, 3 test files")
    p.add_argument("--jobs", type=int, default=2, help="metric worker processes")
    args = p.parse_args(argv)
    settings = dict(QUICK if args.quick else SETTINGS)
    if args.steps is not None:
        settings["steps"] = args.steps
    if args.test_files is not None:
        settings["test_files"] = args.test_files
    if settings["steps"] < 1 or settings["test_files"] < 1:
        print("dcu ablation: error: --steps and --test-files must be at least 1", file=sys.stderr)
        return 2
    runs = ablation_runs()
    if args.quick:
        runs = [runs[-1], runs[1]]  # UBD/MSE and the real twin: both code paths
    try:
        result = run_ablation(args.out, settings, runs, jobs=args.jobs)
    except ValueError as exc:
        print(f"dcu ablation: error: {exc}", file=sys.stderr)
        return 1
    for r in result["runs"]:
        s = r["summary"]
        print(f"{r['name']:<18} PESQ {s['pesq']['mean']:.3f}  SI-SDR {s['si_sdr']['mean']:6.2f} dB"
              f"  STOI {s['stoi']['mean']:.3f}  ({r['train_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(ablation_cli(sys.argv[1:]))
