"""Measuring speed and memory: FLOP counts, convolution peaks, alternating timers, training
steps, inference calls, and the peak memory of a training step in a fresh child process.

FLOPs are those of the reference network (one multiply-add = 2 FLOPs, convolutions only; the
STFT and elementwise work are left out), counted with ``torch.utils.flop_counter`` and checked
against the closed form of :func:`analytic_forward_flops`. "Achieved GFLOP/s" divides that count
by the measured time, so an engine that skips work (Gauss's trick) can exceed what the hardware
does per second; it is a speed, comparable across implementations of the same network.

Peak memory: ``tracemalloc`` does not see PyTorch's allocations, so each measurement runs in a
fresh child process that builds the model and the batch, reads its resident set size, runs the
training steps, and reports the high-water mark (Linux's ``VmHWM``) minus that baseline:
activations, gradients and optimiser state, as the operating system sees them (glibc's default
malloc settings there, see :func:`peak_training_memory`).

Book: book/06_architectures.ipynb
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dcu.architectures import get_architecture
from dcu.engine import autocast, reference, tune_cpu
from dcu.losses import wsdr_loss
from dcu.stft import HOP_LENGTH, N_FFT, SAMPLE_RATE, padded_length


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
    out = subprocess.run([sys.executable, "-m", "dcu.jobs.measure", "--memory-child", json.dumps(job)],
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


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        _memory_child(json.loads(sys.argv[2]))
