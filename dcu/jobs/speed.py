"""How fast and how large each DCUnet is on this machine: ``dcu bench``.

For each architecture it reports the parameters, the forward FLOPs per second of audio, the
inference real-time factor (``model(waveform)`` on a 10 s clip, eval mode, ``inference_mode``),
the time of one training step (batch 8 x 2 s, wSDR loss, Adam), the peak memory of a training
step, the precision the engine ran in (``--precision auto`` resolves to bf16 where the CPU runs
it natively), and the achieved GFLOP/s as a fraction of this machine's measured float32 and
bfloat16 convolution peaks (:func:`dcu.jobs.measure.conv_peak_gflops`). How each figure is measured:
:mod:`dcu.jobs.measure`.

Book: book/06_architectures.ipynb
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

from dcu.architectures import ARCHITECTURES
from dcu.base.atomic import write_json
from dcu.engine import PRECISIONS, optimize, resolve_precision, tune_cpu
from dcu.jobs.measure import (alternate, analytic_forward_flops, analytic_training_flops,
                         conv_peak_gflops, inference_call, peak_training_memory, training_step)
from dcu.stft import SAMPLE_RATE
from dcu.unet import DCUnet

FULL_ARCHS = ("DCUnet-10", "DCUnet-16", "DCUnet-20", "Large-DCUnet-20")
QUICK_ARCHS = ("tiny", "DCUnet-10")


def build_dcunet(arch: str, batch_norm: str = "complex", precision: str | None = "fp32"
                 ) -> torch.nn.Module:
    """A freshly initialised DCUnet (seed 0) on the engine in ``precision``, or the reference
    code when ``precision`` is None. Also the builder :func:`peak_training_memory` runs."""
    torch.manual_seed(0)
    model = DCUnet(arch, batch_norm=batch_norm)
    return model if precision is None else optimize(model, precision)


def compiled_training(arch: str, batch_norm: str, reps: int, precision: str | None) -> dict:
    """Training with the network (STFT to mask) under ``torch.compile``: the first step's time
    (mostly compilation) and the steady step time. Measured on the 2-core AMD EPYC this was
    written on: about a minute to compile DCUnet-10 and each step 30% slower than eager, so dcu
    does not compile by default; on other machines this tells whether it pays."""
    model = build_dcunet(arch, batch_norm, precision)
    model.unet = torch.compile(model.unet, dynamic=False)
    step = training_step(model)
    first = alternate({"c": step}, 1, warmup=0)["c"][0]
    steady = alternate({"c": step}, reps, warmup=0)["c"]
    return {"compile_first_step_seconds": first,
            "train_step_compiled_median": statistics.median(steady)}


def bench_arch(arch: str, reps: int, memory: bool, batch_norm: str, threads,
               precision: str | None, peaks: dict, compile_network: bool = False) -> dict:
    """All figures for one architecture (see the module docstring); ``precision`` None times
    the reference code."""
    model = build_dcunet(arch, batch_norm, precision)
    clip = 10 * SAMPLE_RATE
    infer = alternate({"i": inference_call(model)}, reps)["i"]
    train = alternate({"t": training_step(model)}, reps)["t"]
    infer_flops = analytic_forward_flops(arch, clip)
    train_flops = analytic_training_flops(arch, 2 * SAMPLE_RATE, 8)
    row = {"arch": arch, "batch_norm": batch_norm, "parameters": model.num_parameters(),
           "gflop_per_audio_second": infer_flops / 1e9 / 10,
           "inference_seconds": infer, "rtf": statistics.median(infer) / 10,
           "train_step_seconds": train, "train_step_median": statistics.median(train),
           "inference_gflops": infer_flops / 1e9 / statistics.median(infer),
           "train_gflops": train_flops / 1e9 / statistics.median(train),
           "precision": "reference" if precision is None else resolve_precision(precision),
           "conv_peak_gflops": peaks}
    peak = peaks["bf16" if row["precision"] == "bf16" else "fp32"]
    row["inference_peak_fraction"] = row["inference_gflops"] / peak
    row["train_peak_fraction"] = row["train_gflops"] / peak
    if compile_network:
        row.update(compiled_training(arch, batch_norm, reps, precision))
    if memory:
        row["peak_train_mib"] = peak_training_memory(
            "dcu.jobs.speed:build_dcunet", {"arch": arch, "batch_norm": batch_norm,
                                       "precision": precision}, threads=threads)
    return row


TABLE_HEAD = (f"{'arch':<16} {'params':>9} {'prec':>4} {'GFLOP/s-audio':>13} {'RTF':>6} "
              f"{'train s':>8} {'peak MiB':>9} {'GFLOP/s inf':>11} {'GFLOP/s train':>13} "
              f"{'% peak inf':>10} {'% peak train':>12}")


def format_row(r: dict) -> str:
    mem = f"{r['peak_train_mib']:.0f}" if "peak_train_mib" in r else "-"
    prec = {"reference": "ref"}.get(r["precision"], r["precision"])
    return (f"{r['arch']:<16} {r['parameters']:>9,} {prec:>4} {r['gflop_per_audio_second']:>13.1f} "
            f"{r['rtf']:>6.3f} {r['train_step_median']:>8.2f} {mem:>9} "
            f"{r['inference_gflops']:>11.0f} {r['train_gflops']:>13.0f} "
            f"{100 * r['inference_peak_fraction']:>9.0f}% {100 * r['train_peak_fraction']:>11.0f}%")


def bench_cli(argv: list[str]) -> int:
    """``dcu bench [--arch A ...] [--precision P] [--json FILE] [--quick]``."""
    p = argparse.ArgumentParser(prog="dcu bench", description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", choices=list(ARCHITECTURES), metavar="ARCH",
                   help=f"architectures (default: {', '.join(FULL_ARCHS)})")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--quick", action="store_true",
                   help="tiny and DCUnet-10, 2 reps, smaller peak measurement (for CI)")
    p.add_argument("--reps", type=positive_int, help="timed repetitions per figure (default 3, quick 2)")
    p.add_argument("--batch-norm", default="complex", choices=["complex", "naive"])
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="engine precision: auto (bf16 where the CPU runs it natively), fp32, bf16")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: one per core)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--compile", action="store_true",
                   help="also time training with torch.compile (compile time and step time)")
    p.add_argument("--reference", action="store_true",
                   help="time the reference code (dcu.complex_nn / dcu.unet, no engine)")
    args = p.parse_args(argv)
    if args.json and args.json.exists():
        p.error(f"{args.json} already exists; choose a new file name (results never overwrite)")
    archs = args.arch or (QUICK_ARCHS if args.quick else FULL_ARCHS)
    reps = args.reps or (2 if args.quick else 3)
    settings = tune_cpu(args.threads)
    peaks = {prec: conv_peak_gflops(prec, batch=2 if args.quick else 8, reps=2 if args.quick else 3)
             for prec in ("fp32", "bf16")}
    precision = None if args.reference else args.precision
    print(f"torch {torch.__version__}, {settings['threads']} threads, convolution peak "
          f"{peaks['fp32']:.0f} GFLOP/s fp32, {peaks['bf16']:.0f} GFLOP/s bf16; "
          f"RTF = seconds per second of audio (10 s clip); train = batch 8 x 2 s", flush=True)
    print(TABLE_HEAD + "\n" + "-" * len(TABLE_HEAD), flush=True)
    rows = []
    for arch in archs:
        rows.append(bench_arch(arch, reps, not args.no_memory, args.batch_norm, args.threads,
                               precision, peaks, args.compile))
        print(format_row(rows[-1]), flush=True)
        if args.compile:
            print(f"{'':<16} torch.compile: first step {rows[-1]['compile_first_step_seconds']:.0f}"
                  f" s, then {rows[-1]['train_step_compiled_median']:.2f} s per step", flush=True)
    if args.json:
        report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                              "cpu_count": os.cpu_count(), "torch": torch.__version__,
                              "conv_peak_gflops": peaks},
                  "settings": {**settings, "precision": args.precision,
                               "reference": args.reference, "reps": reps,
                               "batch_norm": args.batch_norm, "train_batch": "8 x 2 s",
                               "inference_clip_seconds": 10},
                  "results": rows}
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(bench_cli(sys.argv[1:]))
