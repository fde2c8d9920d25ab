"""The paper's ablations as a grid of training runs: complex vs real network, masks, losses.

    dcu ablation                                   # the DCUnet-10 grid -> data/results/ablation.json
    dcu ablation --grid small --out /tmp/s.json    # the book's laptop-scale grid (minutes)

Choi et al. support their proposals with ablations: the complex U-Net against a real-valued twin
with as many parameters, and the three masks (UBD, BDSS, BDT) under three losses (spectral MSE,
SDR, weighted SDR). :data:`GRIDS` holds the grids as data. Every run is a normal ``dcu train`` run
(:class:`dcu.training.Trainer`) in its own folder under ``--runs``: a killed grid resumes the run it
was in from its last checkpoint; finished runs (those in the result file) are never redone. Each
run is scored with its final weights (the same budget for every arm) on the whole test split and
the unseen-speaker set; the result file holds per run its settings, wall and CPU time, precision,
training log, and the metrics' means and per-file values, so every comparison can be recomputed
(:func:`difference`; chapter 7 does it per seed and across seeds). Several processes (cores,
GPUs) can share one grid: each claims a run with a lock file in its folder
(:func:`dcu.base.atomic.claim`) and adds its results to the file when it finishes, under the
file's own lock (:func:`add_run`).

Book: book/07_training.ipynb
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dcu.base.atomic import claim, locked, release, write_json
from dcu.data import list_pairs
from dcu.base.guard import shown
from dcu.engine import optimize
from dcu.jobs.enhance import enhance_recording
from dcu.jobs.evaluate import evaluate_pairs
from dcu.results import columns_to_rows, paired
from dcu.store.checkpoint import load
from dcu.training import TrainConfig, Trainer, TrainingError
from dcu.training.log import read_log
from dcu.unet import ModelConfig

__all__ = ["AblationRun", "GridSettings", "GRIDS", "add_run", "run_grid", "difference",
           "ablation_cli"]


@dataclass(frozen=True)
class AblationRun:
    """One run of a grid: what is varied; everything else comes from its :class:`GridSettings`."""

    name: str
    mask: str = "BDT"
    loss: str = "wSDR"
    network: str = "complex"
    seed: int = 0

    @property
    def folder(self) -> str:
        return self.name.replace("/", "-").replace(" ", "_")


@dataclass
class GridSettings:
    """What every run of a grid shares (the training options of :class:`dcu.training.TrainConfig`)."""

    arch: str = "DCUnet-10"
    steps: int = 1500
    batch_size: int = 8
    segment_seconds: float = 2.0
    lr: float = 1e-3
    warmup_steps: int = 100
    valid_every: int = 250
    valid_files: int = 10
    precision: str = "auto"
    data: str = "shipped"
    test_files: int = 0  # 0: the whole test split
    unseen: bool = True  # also score the unseen-speaker set
    runs: list = field(default_factory=list)


def paper_runs(seeds: int = 3) -> list[AblationRun]:
    """Complex vs real (BDT, wSDR) for seed 0, the masks with wSDR and the losses with BDT (seed
    0), then complex vs real for the other seeds. The first two runs already make a comparison."""
    pairs = [(AblationRun(f"complex seed {s}", seed=s),
              AblationRun(f"real seed {s}", network="real", seed=s)) for s in range(seeds)]
    arms = [AblationRun("UBD/wSDR", mask="UBD"), AblationRun("BDSS/wSDR", mask="BDSS"),
            AblationRun("BDT/SDR", loss="SDR"), AblationRun("BDT/MSE", loss="MSE")]
    return [*pairs[0], *arms, *(run for pair in pairs[1:] for run in pair)]


def small_runs() -> list[AblationRun]:
    """The full 3 x 3 mask x loss grid, the real twin and a second seed (laptop scale)."""
    grid = [AblationRun(f"{mask}/{loss}", mask, loss)
            for loss in ("wSDR", "SDR", "MSE") for mask in ("BDT", "BDSS", "UBD")]
    return [grid[0], AblationRun("BDT/wSDR real", network="real"),
            AblationRun("BDT/wSDR seed 1", seed=1), *grid[1:]]


GRIDS = {
    # issue-sized: DCUnet-10, 1500 steps of 8 x 2 s per run, whole test split + unseen speakers
    "paper": GridSettings(runs=paper_runs()),
    # chapter 7's live cell: the small U-Net, 120 steps of 4 x 1 s, 40 test files
    "small": GridSettings(arch="small", steps=120, batch_size=4, segment_seconds=1.0,
                          warmup_steps=12, valid_every=120, valid_files=2, test_files=40,
                          unseen=False, runs=small_runs()),
    # tests: seconds
    "quick": GridSettings(arch="tiny", steps=3, batch_size=2, segment_seconds=1.0, warmup_steps=1,
                          valid_every=3, valid_files=1, test_files=2, unseen=False,
                          precision="fp32", runs=[AblationRun("complex"),
                                                  AblationRun("real", network="real")]),
}


def evenly_spaced(pairs: list, n: int) -> list:
    """``n`` evenly spaced items of ``pairs`` (all of them for ``n = 0``)."""
    if not n or n >= len(pairs):
        return list(pairs)
    return [pairs[i] for i in np.unique(np.linspace(0, len(pairs) - 1, n).round().astype(int))]


def eval_sets(settings: GridSettings) -> dict:
    """``{"test": [...], "unseen": [...]}`` as ``(name, clean path, noisy path)`` triples."""
    sets = {"test": evenly_spaced(list_pairs("test"), settings.test_files)}
    if settings.unseen:
        sets["unseen"] = list_pairs("unseen")
    return {k: [(Path(c).stem, str(c), str(n)) for n, c in v] for k, v in sets.items()}


def _round(x) -> float | None:
    x = float(x)
    return round(x, 4) if np.isfinite(x) else None


def score(pairs, enhance, jobs: int, progress: bool) -> dict:
    """Summary (mean, ci95, n per metric) and per-file values (in ``pairs`` order)."""
    summary, rows = evaluate_pairs(pairs, enhance, jobs=jobs, progress=progress)
    summary = {m: {k: (_round(v) if k != "n" else v) for k, v in s.items()}
               for m, s in summary.items()}
    return {"summary": summary, "files": {m: [_round(r[m]) for r in rows] for m in summary}}


def train_config(run: AblationRun, settings: GridSettings, folder: Path) -> TrainConfig:
    """The ``dcu train`` configuration of one run."""
    s = settings
    return TrainConfig(model=ModelConfig(s.arch, mask=run.mask, network=run.network),
                       loss=run.loss, seed=run.seed, steps=s.steps, batch_size=s.batch_size,
                       segment_seconds=s.segment_seconds, lr=s.lr, warmup_steps=s.warmup_steps,
                       valid_every=s.valid_every, valid_files=s.valid_files,
                       precision=s.precision, data=s.data, checkpoint_minutes=3.0,
                       out=str(folder))


def train_run(run: AblationRun, settings: GridSettings, folder: Path, progress: bool) -> Path:
    """Train ``run`` in ``folder`` to the end, resuming its last checkpoint if there is one;
    returns the final checkpoint (``last.pt``)."""
    cfg = train_config(run, settings, folder)
    last = folder / "last.pt"
    trainer = Trainer(cfg, resume=last.exists(), progress=progress)
    if trainer.step < cfg.steps:
        trainer.run()
    trainer.close()  # the run folder's lock (run() lets go of it too)
    return last


def _read_log(folder: Path) -> list:
    """The run's training log (:func:`dcu.training.log.read_log`), or [] if absent or unreadable."""
    try:
        return read_log(folder)
    except (OSError, ValueError):
        return []


def _machine() -> dict:
    return {"torch": torch.__version__.split("+")[0], "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor(),
            "torch_threads": torch.get_num_threads()}


def difference(result: dict, a: str, b: str, split: str = "test",
               metrics=("pesq", "stoi", "si_sdr")) -> dict:
    """Run ``a`` minus run ``b`` of a grid ``result`` (as :func:`run_grid` returns and writes it),
    file by file on ``split``: per metric the mean, its 95 % interval and ``n``."""
    runs, names = {r["name"]: r for r in result["runs"]}, result["meta"]["eval_files"][split]
    return paired(columns_to_rows(runs[b][split]["files"], names),
                  columns_to_rows(runs[a][split]["files"], names), metrics)


def run_grid(out, runs_dir, settings: GridSettings, runs: list[AblationRun] | None = None,
             jobs: int = 2, progress: bool = True) -> dict:
    """Train and score every run of the grid not yet in ``out`` (JSON), rewriting it after each;
    a run another live process has claimed is left to it.

    Returns ``{"meta": ..., "input": {set: scores of the noisy input}, "runs": [...]}``.

    Raises:
        ValueError: ``out`` exists but holds another grid (it is never overwritten).
    """
    out, runs_dir = Path(out), Path(runs_dir)
    runs = settings.runs if runs is None else runs
    sets = eval_sets(settings)
    meta = {"settings": {k: v for k, v in asdict(settings).items() if k != "runs"},
            "eval_files": {k: [p[0] for p in v] for k, v in sets.items()}}
    if out.exists():
        try:
            result = json.loads(out.read_text())
            same = result["meta"]["settings"] == json.loads(json.dumps(meta["settings"]))
        except (ValueError, KeyError, TypeError):
            same = False
        if not same:
            raise ValueError(f"{out}: exists and holds another grid; choose another --out "
                             "(it is never overwritten)")
    else:
        result = {"meta": meta, "input": {k: score(v, None, jobs, progress) for k, v in sets.items()},
                  "runs": []}
        with locked(out.with_name(f".{out.name}.lock")):  # another worker may have begun it
            if not out.exists():
                write_json(out, result, indent=None)
    for run in runs:
        lock = runs_dir / run.folder / "running.lock"
        if run.name in _recorded(out) or not claim(lock):
            continue  # finished, or another process is training it now (see the docstring)
        try:
            if run.name not in _recorded(out):  # not finished meanwhile by another process
                _record(out, run, settings, runs_dir, sets, jobs, progress)
        finally:
            release(lock)
    result["runs"] = list(_recorded(out).values())
    return result


def _recorded(out: Path) -> dict:
    """The finished runs ``out`` holds now, by name (other processes may have added some)."""
    try:
        return {r["name"]: r for r in json.loads(out.read_text())["runs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _record(out, run, settings, runs_dir, sets, jobs, progress) -> None:
    """Train ``run`` to the end, score it and add it to the runs ``out`` holds now."""
    if progress:
        print(f"== {run.name}", flush=True)
    last = train_run(run, settings, runs_dir / run.folder, progress)
    model = optimize(load(last), settings.precision)
    meta_run = model.metadata
    record = {**asdict(run), "arch": settings.arch, "steps": meta_run["step"],
              "batch_size": settings.batch_size, "segment_seconds": settings.segment_seconds,
              "precision": meta_run.get("precision"), "num_parameters": model.num_parameters(),
              "wall_seconds": round(meta_run.get("clock", {}).get("wall_seconds", 0.0), 1),
              "cpu_seconds": round(meta_run.get("clock", {}).get("cpu_seconds", 0.0), 1),
              "machine": _machine(), "log": _read_log(runs_dir / run.folder),
              "folder": str(runs_dir / run.folder)}
    for name, pairs in sets.items():
        record[name] = score(pairs, functools.partial(enhance_recording, model), jobs, progress)
    add_run(out, record)


def add_run(out, record: dict) -> None:
    """Add (or replace) ``record`` among the runs of the grid file ``out``, holding the file's
    lock (``.NAME.lock`` beside it) from reading it to writing it back, so that workers finishing
    at once never drop each other's runs."""
    out = Path(out)
    with locked(out.with_name(f".{out.name}.lock")):
        result = json.loads(out.read_text())
        result["runs"] = [*(r for r in result["runs"] if r["name"] != record["name"]), record]
        write_json(out, result, indent=None)


def ablation_cli(argv: list[str]) -> int:
    """``dcu ablation``: run (or resume) a grid and print its table."""
    p = argparse.ArgumentParser(prog="dcu ablation", description=__doc__.splitlines()[0])
    p.add_argument("--grid", default="paper", choices=list(GRIDS),
                   help="paper: DCUnet-10, 1500 steps a run (hours of CPU); small: the book's "
                        "laptop grid (minutes); quick: a smoke test")
    p.add_argument("--out", type=Path, help="result JSON, resumed if it exists "
                   "(default data/results/ablation.json for the paper grid)")
    p.add_argument("--runs", type=Path, default=Path("runs/ablation"),
                   help="folder holding one training folder per run (default runs/ablation)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these runs of the grid")
    p.add_argument("--steps", type=int, help="override the grid's training steps per run")
    p.add_argument("--jobs", type=int, default=2, help="metric worker processes")
    args = p.parse_args(argv)
    settings = GRIDS[args.grid]
    if args.steps is not None:
        if args.steps < 1:
            p.error("--steps must be at least 1")
        settings = GridSettings(**{**asdict(settings), "steps": args.steps, "runs": settings.runs})
    runs = settings.runs
    if args.only:
        unknown = set(args.only) - {r.name for r in runs}
        if unknown:
            p.error(f"no run named {', '.join(sorted(unknown))} in the {args.grid} grid; "
                    f"choose from: {', '.join(r.name for r in runs)}")
        runs = [r for r in runs if r.name in args.only]
    out = args.out or (Path("data/results/ablation.json") if args.grid == "paper" else None)
    if out is None:
        p.error("--out is required for this grid")
    try:
        result = run_grid(out, args.runs / args.grid, settings, runs, jobs=args.jobs)
    except (ValueError, TrainingError, FileNotFoundError) as exc:
        print(shown(f"dcu ablation: error: {exc}"), file=sys.stderr)
        return 1
    for r in result["runs"]:
        s = r["test"]["summary"]
        print(f"{r['name']:<18} PESQ {s['pesq']['mean']:.3f}  STOI {s['stoi']['mean']:.3f}  "
              f"SI-SDR {s['si_sdr']['mean']:6.2f} dB  ({r['steps']} steps, {r['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(ablation_cli(sys.argv[1:]))
