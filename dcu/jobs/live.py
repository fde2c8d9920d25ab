"""Live audio on the command line: ``dcu stream`` and ``dcu enhance --stream``.

``dcu stream - --model CAUSAL.pt`` reads raw 16-bit little-endian mono PCM at 16 kHz on standard
input and writes the enhanced stream in the same format on standard output, as it comes, so a
microphone can be cleaned live::

    arecord -f S16_LE -r 16000 -c 1 | dcu stream - --model CAUSAL.pt | aplay -f S16_LE -r 16000

Its output starts with the model's latency of silence (64 ms at 1024/256) and ends with the
input's last sample; the latency, the real-time factor and the per-read times go to standard
error. ``dcu enhance --stream`` enhances files through the same path (:func:`stream_recording`):
each channel is one stream, fed hop by hop, and the output is aligned with the input.
``dcu bench --stream`` times the causal models hop by hop on one thread (:func:`bench_streaming`).

Book: book/10_real_time.ipynb
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import numpy as np
import torch

from dcu.base.atomic import write_json
from dcu.audio import fit_length, resample
from dcu.engine import PRECISIONS, optimize, resolve_precision, tune_cpu
from dcu.level import LEVEL_WINDOW_DBFS, level_gain
from dcu.stft import HOP_LENGTH, N_FFT, SAMPLE_RATE
from dcu.store.checkpoint import load
from dcu.stream import StreamingEnhancer
from dcu.unet import DCUnet

__all__ = ["Timer", "stream_recording", "describe_streaming", "streaming_enhancer", "stream_cli",
           "bench_streaming", "run_stream_bench", "stft_setting"]


class Timer:
    """Time of each call of a function, for the real-time factor and the per-hop times: wall time,
    or with ``clock=time.thread_time`` the CPU time of this thread (its compute time, whatever
    else the machine runs)."""

    def __init__(self, clock=time.perf_counter):
        self.seconds: list[float] = []
        self.clock = clock

    def __call__(self, fn, *args):
        start = self.clock()
        out = fn(*args)
        self.seconds.append(self.clock() - start)
        return out

    def report(self, audio_seconds: float) -> dict:
        """``rtf`` (compute time / audio time) and the median and 99th percentile per call, ms."""
        t = np.asarray(self.seconds or [0.0]) * 1000
        return {"rtf": float(t.sum() / 1000 / max(audio_seconds, 1e-9)),
                "hop_ms_median": float(np.median(t)), "hop_ms_p99": float(np.percentile(t, 99))}


def stream_recording(enhancer: StreamingEnhancer, audio, sample_rate: int = SAMPLE_RATE,
                     level_window=LEVEL_WINDOW_DBFS) -> tuple[np.ndarray, dict]:
    """Enhance ``(time,)`` or ``(channels, time)`` float audio at any rate hop by hop, each channel
    as one live stream, the counterpart of :func:`dcu.jobs.enhance.enhance_recording` (resampled to
    16 kHz and back, each channel's level moved into ``level_window`` and back). Returns the
    output aligned with the input (the delay cut off) and the timing of the hops (``rtf``,
    ``hop_ms_median``, ``hop_ms_p99``, ``latency_ms``)."""
    arr = np.asarray(audio, dtype=np.float32)
    chans = arr.reshape(-1, arr.shape[-1])
    gains = [level_gain(ch, level_window) if level_window else 1.0 for ch in chans]
    x = resample(chans, sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else chans
    timer, out = Timer(), []
    with torch.inference_mode():
        for ch, gain in zip(x, gains):
            pieces = [timer(enhancer.process, ch[i:i + enhancer.hop] * gain)
                      for i in range(0, len(ch), enhancer.hop)]
            y = np.concatenate(pieces + [enhancer.flush()])[enhancer.latency_samples:]
            out.append(y / gain)
    y = np.stack(out)
    if sample_rate != SAMPLE_RATE:
        y = fit_length(resample(y, SAMPLE_RATE, sample_rate), arr.shape[-1])
    stats = {**timer.report(x.size / SAMPLE_RATE), "latency_ms": enhancer.latency_ms,
             "hop_ms": 1000 * enhancer.hop / SAMPLE_RATE}
    return y.reshape(arr.shape).astype(np.float32), stats


def describe_streaming(s: dict) -> str:
    """One line from :func:`stream_recording`'s timing (``dcu enhance --stream`` prints it)."""
    return (f"streamed hop by hop: latency {s['latency_ms']:.0f} ms, real-time factor "
            f"{s['rtf']:.2f}, per hop median {s['hop_ms_median']:.1f} ms, p99 "
            f"{s['hop_ms_p99']:.1f} ms (a hop is {s['hop_ms']:.0f} ms)")


def streaming_enhancer(model, name, precision: str) -> StreamingEnhancer:
    """``StreamingEnhancer(model)``, refused in one line naming ``name`` unless it is causal."""
    if not model.config.causal:
        raise ValueError(f"{name}: a {model.config.arch} that looks ahead (not causal) cannot "
                         "stream; give a causal checkpoint (dcu train --causal)")
    return StreamingEnhancer(model, precision)


def stream_cli(argv: list[str]) -> int:
    """``dcu stream - --model NAME_OR_PATH``: raw PCM from standard input to standard output."""
    p = argparse.ArgumentParser(prog="dcu stream", description="Enhance live audio: raw 16-bit "
                                "little-endian mono PCM at 16 kHz from standard input to "
                                "standard output, hop by hop, with a causal model.")
    p.add_argument("input", metavar="-", help="'-': read standard input")
    p.add_argument("--model", required=True, help="a causal checkpoint (path or shipped name)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (bfloat16 where the CPU runs it natively), fp32 or bf16")
    args = p.parse_args(argv)
    if args.input != "-":
        p.error(f"{args.input}: dcu stream reads standard input, give '-' (for audio files: "
                "dcu enhance --stream)")
    tune_cpu(threads=1)  # one hop at a time: one thread has the least overhead
    try:
        model = load(args.model)
        enhancer = streaming_enhancer(model, args.model, args.precision)
    except Exception as exc:  # a bad name or file, or a model that is not causal
        text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"dcu stream: error: {text}", file=sys.stderr)
        return 1
    print(f"dcu stream: {model.config.arch} (causal), latency {enhancer.latency_ms:.0f} ms; "
          "16-bit mono PCM at 16 kHz, stdin -> stdout", file=sys.stderr, flush=True)
    source, sink, timer = sys.stdin.buffer, sys.stdout.buffer, Timer()
    received, odd = 0, b""
    with torch.inference_mode():
        while True:
            data = odd + source.read1(2 * enhancer.hop)  # what has arrived, up to one hop
            if len(data) == len(odd):
                break
            cut = len(data) - len(data) % 2
            odd, pcm = data[cut:], np.frombuffer(data[:cut], dtype="<i2")
            received += len(pcm)
            sink.write(_to_pcm(timer(enhancer.process, pcm / np.float32(32768))))
            sink.flush()
        sink.write(_to_pcm(enhancer.flush()))
        sink.flush()
    r = timer.report(received / SAMPLE_RATE)
    print(f"dcu stream: {received / SAMPLE_RATE:.1f} s, real-time factor {r['rtf']:.2f}, "
          f"per read median {r['hop_ms_median']:.1f} ms, p99 {r['hop_ms_p99']:.1f} ms", file=sys.stderr)
    return 0


def _to_pcm(y: np.ndarray) -> bytes:
    return np.clip(np.round(y * 32768), -32768, 32767).astype("<i2").tobytes()


def bench_streaming(arch: str, precision: str, seconds: float = 10.0, n_fft: int = N_FFT,
                    hop_length: int = HOP_LENGTH) -> dict:
    """Time a causal ``arch`` (random weights, seed 0) streamed hop by hop on the calling thread
    (``torch.set_num_threads(1)`` first for one thread), one second of warm-up, then ``seconds``
    of noise: per-hop compute time (this thread's CPU time: median and 99th percentile, ms), its
    wall time's 99th percentile, the streaming real-time factor, and the offline real-time factor
    of the same model on the whole clip (``model(waveform)``, the engine, the same precision)."""
    torch.manual_seed(0)
    model = DCUnet(arch, causal=True, n_fft=n_fft, hop_length=hop_length).eval()
    enhancer = StreamingEnhancer(model, precision)
    hop = enhancer.hop
    x = 0.1 * torch.randn(int((seconds + 1) * SAMPLE_RATE), generator=torch.Generator().manual_seed(0))
    cpu, wall = Timer(time.thread_time), Timer()
    with torch.inference_mode():
        enhancer.process(x[:SAMPLE_RATE])
        for i in range(SAMPLE_RATE, len(x) - hop + 1, hop):
            wall(cpu, enhancer.process, x[i:i + hop])
    timed = len(cpu.seconds) * hop / SAMPLE_RATE
    offline, clip, whole = optimize(copy.deepcopy(model), precision), Timer(time.thread_time), x[None]
    with torch.inference_mode():
        for _ in range(3):  # a warm-up, then two timed runs
            clip(offline, whole[:, SAMPLE_RATE:])
    r = cpu.report(timed)
    return {"arch": arch, "precision": resolve_precision(precision), "n_fft": n_fft,
            "hop_length": hop, "latency_ms": enhancer.latency_ms, "hop_ms": 1000 * hop / SAMPLE_RATE,
            "hop_ms_median": r["hop_ms_median"], "hop_ms_p99": r["hop_ms_p99"],
            "hop_ms_p99_wall": wall.report(timed)["hop_ms_p99"], "stream_rtf": r["rtf"],
            "offline_rtf": statistics.median(clip.seconds[1:]) / seconds,
            "parameters": model.num_parameters()}


STREAM_TABLE_HEAD = (f"{'arch':<16} {'prec':>4} {'latency':>7} {'hop':>5} {'median':>7} "
                     f"{'p99':>6} {'p99 wall':>8} {'RTF stream':>10} {'RTF offline':>11}")


def format_stream_row(r: dict) -> str:
    """One line of ``dcu bench --stream``'s table (times in ms)."""
    return (f"{r['arch']:<16} {r['precision']:>4} {r['latency_ms']:>5.0f}ms {r['hop_ms']:>3.0f}ms "
            f"{r['hop_ms_median']:>7.2f} {r['hop_ms_p99']:>6.2f} {r['hop_ms_p99_wall']:>8.2f} "
            f"{r['stream_rtf']:>10.3f} {r['offline_rtf']:>11.3f}")


def stft_setting(text: str) -> tuple[int, int]:
    """argparse type: ``"N_FFT/HOP"`` such as ``"512/128"``."""
    try:
        n_fft, hop = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give N_FFT/HOP, such as 1024/256") from None
    if not 0 < hop <= n_fft:
        raise argparse.ArgumentTypeError(f"{text!r}: the hop must be from 1 to N_FFT")
    return n_fft, hop


def run_stream_bench(archs, stfts, seconds: float = 10.0, json_path=None) -> list[dict]:
    """``dcu bench --stream``: :func:`bench_streaming` for each architecture, STFT setting and
    precision (fp32, bf16) on one thread; prints the table, writes ``json_path`` if given."""
    threads = torch.get_num_threads()
    try:
        return _stream_table(archs, stfts, seconds, json_path, tune_cpu(threads=1))
    finally:
        torch.set_num_threads(threads)


def _stream_table(archs, stfts, seconds, json_path, settings) -> list[dict]:
    print(f"torch {torch.__version__}, 1 thread; causal models, random weights, {seconds:g} s of "
          "noise hop by hop; median/p99: compute (CPU) time per hop, ms; RTF = time / audio time",
          flush=True)
    print(STREAM_TABLE_HEAD + "\n" + "-" * len(STREAM_TABLE_HEAD), flush=True)
    rows = []
    for arch in archs:
        for n_fft, hop in stfts:
            for precision in ("fp32", "bf16"):
                rows.append(bench_streaming(arch, precision, seconds, n_fft, hop))
                print(format_stream_row(rows[-1]), flush=True)
    if json_path:
        write_json(json_path, {"settings": {**settings, "seconds": seconds}, "results": rows})
        print(f"wrote {json_path}")
    return rows
