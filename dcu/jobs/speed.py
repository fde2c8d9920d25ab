"""Speed: how fast and how large each DCUnet is on this machine (``dcu bench``), and how each
figure is measured.

For each architecture ``dcu bench`` reports the parameters, the forward FLOPs per second of
audio, the inference real-time factor (``model(waveform)`` on a 10 s clip, eval mode,
``inference_mode``), the time of one training step (batch 8 x 2 s, wSDR loss, Adam), the peak
memory of a training step, the precision the engine ran in (``--precision auto`` resolves to
bf16 where the CPU runs it natively), and the achieved GFLOP/s as a fraction of this machine's
measured float32 and bfloat16 convolution peaks (:func:`conv_peak_gflops`).

How: FLOPs are those of the reference network (one multiply-add = 2 FLOPs, convolutions only;
the STFT and elementwise work are left out), counted with ``torch.utils.flop_counter`` and
checked against the closed form of :func:`analytic_forward_flops`. "Achieved GFLOP/s" divides
that count by the measured time, so an engine that skips work (Gauss's trick) can exceed what
the hardware does per second; it is a speed, comparable across implementations of the same
network. Timers alternate the candidates (:func:`alternate`), so a machine's slow moments hit
each alike.

Peak memory: ``tracemalloc`` does not see PyTorch's allocations, so each measurement runs in a
fresh child process that builds the model and the batch, reads its resident set size, runs the
training steps, and reports the high-water mark (Linux's ``VmHWM``) minus that baseline:
activations, gradients and optimiser state, as the operating system sees them (glibc's default
malloc settings there, see :func:`peak_training_memory`).

``dcu bench --stream``: the causal models hop by hop on one thread (:mod:`dcu.jobs.live`).

Book: book/06_architectures.ipynb
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dcu.architectures import ARCHITECTURES, get_architecture
from dcu.base.atomic import write_json
from dcu.base.guard import shown
from dcu.engine import PRECISIONS, autocast, optimize, reference, resolve_precision, tune_cpu
from dcu.jobs.live import run_stream_bench, stft_setting
from dcu.losses import wsdr_loss
from dcu.stft import HOP_LENGTH, N_FFT, SAMPLE_RATE, padded_length
from dcu.unet import DCUnet


def conv_peak_gflops(precision: str = "fp32", batch: int = 8, reps: int = 3) -> float:
    """Best GFLOP/s of one large DCUnet-like convolution (forward, 256 -> 256 channels, 5 x 3
    kernel, stride 1, 65 x 33 pixels) in ``precision`` ("fp32" or "bf16"): the rate this machine
    reaches on the kind of work a DCUnet does, the yardstick for "fraction of peak"."""
    x = torch.randn(batch, 256, 65, 33)
    w = torch.randn(256, 256, 5, 3)
    with torch.inference_mode(), autocast(precision, "cpu"):
        conv = lambda: F.conv2d(x, w, None, 1, (2, 1))  # noqa: E731
        conv()
        best = min(_timed(conv) for _ in range(reps))
    return 2 * x.shape[0] * 65 * 33 * 256 * 256 * 15 / best / 1e9


def layer_flops(arch: str, num_samples: int, batch: int = 1) -> list[int]:
    """Convolution FLOPs of each layer (encoders, then decoders) of one forward pass.

    On the stacked layout a convolution costs ``2 * batch * pixels * (2 Cout) * (2 Cin) * kf * kt``
    multiply-adds x 2, where ``pixels`` are its output pixels (its input pixels if transposed),
    with the bins and frames :class:`~dcu.unet.DCUnet` sees after padding to its frame grid.
    """
    spec = get_architecture(arch)
    frames = padded_length(num_samples, spec.frame_multiple, HOP_LENGTH) // HOP_LENGTH + 1
    sizes = spec.feature_sizes(N_FFT // 2 + 1, frames)
    # encoder i writes sizes[i + 1]; decoder j reads sizes[-1 - j] (the encoders' in reverse)
    pixels = sizes[1:] + sizes[::-1][:len(spec.decoders)]
    return [2 * batch * f * t * 4 * cin * cout * kf * kt
            for (cin, cout, (kf, kt), _), (f, t) in zip(spec.encoders + spec.decoders, pixels)]


def analytic_forward_flops(arch: str, num_samples: int, batch: int = 1) -> int:
    """FLOPs of ``model(waveform)`` for ``batch`` clips of ``num_samples`` (convolutions only)."""
    return sum(layer_flops(arch, num_samples, batch))


def analytic_training_flops(arch: str, num_samples: int, batch: int = 8) -> int:
    """FLOPs of a training step: forward, plus input and weight gradients of every layer except
    the input gradient of the first one (the spectrogram needs none)."""
    flops = layer_flops(arch, num_samples, batch)
    return 3 * sum(flops) - flops[0]


def count_forward_flops(model: torch.nn.Module, num_samples: int) -> int:
    """FLOPs of ``model(waveform)`` on one clip, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    model = reference(copy.deepcopy(model))  # count the reference network's convolutions
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, num_samples))
    return counter.get_total_flops()


def _timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def alternate(fns: dict, reps: int, warmup: int = 1, clock=time.perf_counter
              ) -> dict[str, list[float]]:
    """Time each callable ``reps`` times, round-robin (so drifting load hits all alike).

    ``clock=time.process_time`` measures this process's CPU time instead of wall time: with one
    thread it is the compute time, unaffected by other processes sharing the cores.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(_timed(fn, clock))
    return times


def training_step(model: torch.nn.Module, batch: int = 8, seconds: float = 2.0, forward=None,
                  seed: int = 0):
    """A closure running one Adam step of the wSDR loss on a fixed random batch.

    ``forward`` maps the noisy ``(batch, time)`` batch to an estimate of the same shape
    (default ``model``; the asteroid comparison passes an adapter).
    """
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    clean = torch.randn(batch, n, generator=gen) * 0.1
    noisy = clean + torch.randn(batch, n, generator=gen) * 0.05
    forward = forward or model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        wsdr_loss(noisy, clean, forward(noisy)).backward()
        optimizer.step()
    return step


def inference_call(model: torch.nn.Module, seconds: float = 10.0, seed: int = 0):
    """A closure enhancing one clip with ``model(waveform)`` in eval mode, ``inference_mode``."""
    wave = torch.randn(1, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(seed))

    def call():
        model.eval()
        with torch.inference_mode():
            model(wave * 0.1)
    return call


def peak_training_memory(builder: str, kwargs: dict, batch: int = 8, seconds: float = 2.0,
                         steps: int = 2, threads: int | None = None, precision: str = "fp32",
                         forward: str | None = None, path: str | None = None,
                         keep_freed_memory: bool = False) -> float:
    """Peak extra memory (MiB) of ``steps`` training steps, measured in a fresh child process.

    ``builder`` is ``"module:function"`` returning the model from ``**kwargs``; ``forward``
    optionally names ``"module:function"`` making the ``forward`` adapter from the model;
    ``path`` is put on the child's ``sys.path`` first (for builders outside the package). The
    steps run under :func:`dcu.engine.autocast` in ``precision``.
    The child runs with glibc's default malloc settings (``keep_freed_memory=False``), which hand
    large freed blocks back to the kernel, so its resident size follows the live tensors; with
    :func:`tune_cpu`'s ``keep_freed_memory`` a process keeps its high-water mark instead (measured
    here: 10-25% more for a DCUnet-10 training step, depending on how the heap fragments).
    """
    job = dict(builder=builder, kwargs=kwargs, batch=batch, seconds=seconds, steps=steps,
               threads=threads, precision=precision, forward=forward, path=path,
               keep_freed_memory=keep_freed_memory)
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "dcu.jobs.speed", "--memory-child", json.dumps(job)],
                         capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"memory measurement of {builder}{kwargs} failed: "
                           f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(lines[-1])["peak_mib"]


def _resolve(name: str):
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_rss_kib() -> int:
    """High-water resident size of this process's memory since exec (or the last reset).

    Linux's ``VmHWM``; not ``getrusage``'s ``ru_maxrss``, which a child inherits from its
    parent across fork and exec (a child of a big process would report the parent's size).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def _reset_peak_rss() -> None:
    try:  # "5" resets VmHWM to the current resident size (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _memory_child(job: dict) -> None:
    if job.get("path"):
        sys.path.insert(0, job["path"])
    tune_cpu(job.get("threads"), job.get("keep_freed_memory", True))
    model = _resolve(job["builder"])(**job["kwargs"])
    forward = _resolve(job["forward"])(model) if job.get("forward") else None
    step = training_step(model, job["batch"], job["seconds"], forward)
    _reset_peak_rss()
    base = _rss_kib()
    with autocast(job.get("precision", "fp32"), "cpu"):
        for _ in range(job["steps"]):
            step()
    print(json.dumps({"peak_mib": (_peak_rss_kib() - base) / 1024}))



# -- dcu bench ---------------------------------------------------------------------------
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
    p.add_argument("--stream", action="store_true", help="time the causal models hop by hop on "
                   "one thread, fp32 and bf16, beside offline (see dcu.jobs.live)")
    p.add_argument("--stft", nargs="+", type=stft_setting, default=[(1024, 256)],
                   metavar="N_FFT/HOP", help="with --stream: STFT settings (512/128: 32 ms)")
    args = p.parse_args(argv)
    taken = f"dcu bench: error: {args.json}: already exists; choose a new file name (results never overwrite)"
    if args.json and args.json.exists():
        print(shown(taken), file=sys.stderr)
        return 1
    archs = args.arch or (QUICK_ARCHS if args.quick else FULL_ARCHS)
    if args.stream:
        run_stream_bench(archs, args.stft, 3.0 if args.quick else 10.0, args.json)
        return 0
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
        try:
            write_json(args.json, report, overwrite=False)  # claimed: a file made meanwhile stays
        except FileExistsError:
            print(shown(taken), file=sys.stderr)
            return 1
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
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":  # see peak_training_memory
        _memory_child(json.loads(sys.argv[2]))
    else:
        sys.exit(bench_cli(sys.argv[1:]))
