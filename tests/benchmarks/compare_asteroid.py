"""dcu against asteroid's DCUNet, side by side in one process: training step, inference, memory.

Not a unit test and not run by pytest. asteroid is not a dcu dependency; install it for this
script alone, beside the pinned torch (``--no-deps`` keeps pip away from torch)::

    pip install asteroid==0.7.0 --no-deps asteroid-filterbanks==0.4.0 huggingface_hub
    python tests/benchmarks/compare_asteroid.py                     # DCUnet-10, -16, -20
    python tests/benchmarks/compare_asteroid.py --arch DCUnet-10 --reps 5 --json cmp.json
    python tests/benchmarks/compare_asteroid.py --threads 1 --cpu-time   # on a shared machine

Same architecture, same input, same loss (wSDR) and optimiser (Adam) for every model. asteroid
normalises the real and imaginary parts separately, so dcu runs twice: with
``batch_norm="naive"`` (the like-for-like comparison) and with the paper's ``"complex"``
batch norm. dcu runs on its engine in ``--precision`` (default auto: bfloat16 where the CPU runs
it natively); ``--with-bf16-asteroid`` adds asteroid under the same bfloat16 autocast (the fair
comparison for bf16), ``--with-reference`` dcu's reference code (no engine, float32). Timings alternate between the models, repetition by repetition, so a change in
machine load hits all of them alike; the table shows medians (and minima) and the ratios
asteroid / dcu. Peak memory of a training step is measured in a fresh child process per model, with glibc's
default malloc settings (see :func:`dcu.jobs.speed.peak_training_memory`). Every model is timed under
the same process settings (:func:`dcu.engine.tune_cpu`: flush denormals, keep freed memory;
``--default-malloc`` turns the latter off for all of them).

Book: book/06_architectures.ipynb (speed)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from dcu.jobs import speed  # noqa: E402
from dcu.base.atomic import write_json  # noqa: E402
from dcu.engine import PRECISIONS, autocast, resolve_precision, tune_cpu  # noqa: E402

INSTALL = "pip install asteroid==0.7.0 --no-deps asteroid-filterbanks==0.4.0 huggingface_hub"


def build_asteroid(arch: str) -> torch.nn.Module:
    """asteroid's DCUNet with the same layer table, padding the frames like dcu does."""
    warnings.filterwarnings("ignore")
    from asteroid.models import DCUNet

    torch.manual_seed(0)
    return DCUNet(arch.replace("DCUnet", "DCUNet"), fix_length_mode="pad")


def asteroid_forward(model):
    """(batch, time) -> (batch, time): asteroid returns (batch, n_src=1, time)."""
    return lambda wave: model(wave).reshape(wave.shape)


def in_bf16(fn):
    """``fn`` run under the bfloat16 autocast dcu's engine uses."""
    def run():
        with autocast("bf16", "cpu"):
            fn()
    return run


def compare(arch: str, reps: int, memory: bool, threads, with_reference: bool,
            clock=time.perf_counter, onnx: bool = False, precision: str = "auto",
            bf16_asteroid: bool = False) -> dict:
    models = {"dcu-naive": speed.build_dcunet(arch, "naive", precision),
              "dcu-complex": speed.build_dcunet(arch, "complex", precision),
              "asteroid": build_asteroid(arch)}
    forward = {"asteroid": asteroid_forward(models["asteroid"])}
    train = {k: speed.training_step(m, forward=forward.get(k)) for k, m in models.items()}
    infer = {k: speed.inference_call(m) for k, m in models.items()}
    if bf16_asteroid:  # asteroid under the same bfloat16 autocast
        train["asteroid-bf16"] = in_bf16(train["asteroid"])
        infer["asteroid-bf16"] = in_bf16(infer["asteroid"])
    if precision != "fp32" and resolve_precision(precision) == "bf16":  # dcu's engine in fp32
        fp32 = speed.build_dcunet(arch, "complex", "fp32")
        train["dcu-complex-fp32"] = speed.training_step(fp32)
        infer["dcu-complex-fp32"] = speed.inference_call(fp32)
    if with_reference:  # dcu's reference code, no engine
        ref = speed.build_dcunet(arch, "complex", None)
        train["dcu-complex-ref"] = speed.training_step(ref)
        infer["dcu-complex-ref"] = speed.inference_call(ref)
    if onnx:  # the same network exported to ONNX, run by onnxruntime
        from dcu.jobs.export import OnnxEnhancer, export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            runner = OnnxEnhancer(export_onnx(models["dcu-complex"], Path(tmp) / "m.onnx"),
                                  threads=threads)
        wave = torch.randn(1, 160000, generator=torch.Generator().manual_seed(0)) * 0.1
        infer["dcu-complex-onnx"] = lambda: runner(wave)
    out = {"arch": arch, "precision": resolve_precision(precision),
           "train": speed.alternate(train, reps, clock=clock),
           "inference": speed.alternate(infer, reps, clock=clock), "memory": {}}
    if memory:
        for name, kind in (("dcu-naive", "naive"), ("dcu-complex", "complex")):
            out["memory"][name] = speed.peak_training_memory(
                "dcu.jobs.speed:build_dcunet", {"arch": arch, "batch_norm": kind,
                                           "precision": precision}, threads=threads)
        out["memory"]["asteroid"] = speed.peak_training_memory(
            "compare_asteroid:build_asteroid", {"arch": arch}, threads=threads,
            forward="compare_asteroid:asteroid_forward", path=str(HERE))
    return out


def report(res: dict) -> str:
    lines = [f"== {res['arch']}  dcu precision {res['precision']}  "
             "(median s [min s]; ratio = asteroid float32 / this, then asteroid bf16 / this)"]
    for what in ("train", "inference"):
        times = res[what]
        ast = statistics.median(times["asteroid"])
        ast16 = statistics.median(times["asteroid-bf16"]) if "asteroid-bf16" in times else None
        for name, ts in times.items():
            med = statistics.median(ts)
            ratio = "" if name.startswith("asteroid") else f"  x{ast / med:.2f}"
            if ratio and ast16:
                ratio += f"  x{ast16 / med:.2f}"
            lines.append(f"  {what:<9} {name:<16} {med:8.3f} [{min(ts):.3f}]{ratio}")
    for name, mib in res["memory"].items():
        share = mib / res["memory"]["asteroid"]
        ratio = "" if name == "asteroid" else f"  ({share:.2f} of asteroid's)"
        lines.append(f"  peak mem  {name:<16} {mib:8.0f} MiB{ratio}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["DCUnet-10", "DCUnet-16", "DCUnet-20"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", type=Path, help="write the raw timings here (a new file)")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--with-reference", action="store_true",
                   help="also time dcu's reference code (no engine, float32)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="dcu engine precision (default auto: bf16 where native)")
    p.add_argument("--with-bf16-asteroid", action="store_true",
                   help="also time asteroid under the same bfloat16 autocast")
    p.add_argument("--onnx", action="store_true",
                   help="also time dcu-complex exported to ONNX on onnxruntime (inference)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time CPU seconds of this process instead of wall seconds (use with "
                        "--threads 1 on a shared machine: other processes then do not count)")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc's malloc settings alone (for every model)")
    args = p.parse_args(argv)
    try:
        import asteroid  # noqa: F401
    except ImportError:
        print(f"asteroid is not installed; for this script only: {INSTALL}", file=sys.stderr)
        return 2
    if args.json and args.json.exists():
        p.error(f"{args.json} already exists; choose a new file name")
    settings = tune_cpu(args.threads, keep_freed_memory=not args.default_malloc)
    print(f"torch {torch.__version__}, settings {settings}, convolution peak "
          f"{speed.conv_peak_gflops('fp32'):.0f} GFLOP/s fp32, "
          f"{speed.conv_peak_gflops('bf16'):.0f} GFLOP/s bf16", flush=True)
    results = []
    for arch in args.arch:
        results.append(compare(arch, args.reps, not args.no_memory, args.threads,
                               args.with_reference,
                               time.process_time if args.cpu_time else time.perf_counter,
                               args.onnx, args.precision, args.with_bf16_asteroid))
        print(report(results[-1]), flush=True)
    if args.json:
        write_json(args.json, {"settings": {**settings, "cpu_time": args.cpu_time},
                                            "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
