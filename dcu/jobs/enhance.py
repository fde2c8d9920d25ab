"""Enhancing recordings: files and folders of any format, rate, length and channel count.

``dcu enhance INPUT... [--model NAME_OR_PATH] [--out DIR]`` writes, for each input file, an
enhanced file at the input's rate and channel count (each channel enhanced on its own):

- with ``--out DIR``: ``DIR/<the input's file name>`` (files found inside an input folder keep
  their path relative to that folder);
- without: next to the input, as ``<name>_enhanced.<ext>``.

All output paths are planned before any work (:mod:`dcu.jobs.folders`): two inputs with one output
(``a/x.wav`` and ``b/x.wav`` into one ``--out``, ``x.mp3`` beside ``x.wav``), an output that
would replace an input, an ``--out`` inside an input folder, and existing outputs (unless
``--overwrite``) are refused in one line and nothing is written. A folder scan names what it
passes over. Files are checked against :mod:`dcu.audio`'s limits from their header before being
read. Long recordings are processed in overlapping chunks (:func:`enhance_recording`), so
memory stays bounded whatever the length.

Each file is isolated: whatever goes wrong with one (unreadable, out of memory, disk full) is
reported in one line on standard error naming it, and the others still run. Exit status: 0 when
every file was enhanced, 1 when anything was refused or failed, 2 for bad options, 130 on
Ctrl-C (which stops the whole batch).

Book: book/09_your_recordings.ipynb
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dcu import metrics
from dcu.audio import AudioError, fit_length, read_audio, resample, save_audio
from dcu.base.guard import shown
from dcu.engine import PRECISIONS, flush_denormals, optimize
from dcu.jobs.folders import describe_failure, find_inputs, output_path, plan_outputs
from dcu.level import LEVEL_WINDOW_DBFS, level_dbfs, level_gain, level_gain_db
from dcu.stft import SAMPLE_RATE
from dcu.jobs.live import describe_streaming, stream_recording, streaming_enhancer
from dcu.store.checkpoint import load

__all__ = ["check_chunk_seconds", "chunked", "enhance_cli", "enhance_file", "enhance_recording",
           "find_inputs"]


def _say(message: str) -> None:
    """One line on standard error (through tqdm, so a progress bar is not torn); a name in it
    with a newline or bytes that are not UTF-8 is shown escaped (:func:`dcu.base.guard.shown`)."""
    tqdm.write(shown(message), file=sys.stderr)


def check_chunk_seconds(value) -> float:
    """``chunk_seconds`` as a float from 1 to 600 s; ``ValueError`` (one line) otherwise.

    Checked because NaN fails deep inside, a tiny or negative value makes thousands of one-hop
    chunks, and a huge one defeats the bounded memory.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 1.0 <= number <= 600.0:  # also refuses NaN and inf
        raise ValueError(f"--chunk-seconds {value!r}: give seconds from 1 to 600 (memory grows "
                         "with the chunk; the default is 10)")
    return number


def chunk_seconds_arg(text: str) -> float:
    """argparse type for ``--chunk-seconds`` (one-line usage error)."""
    try:
        return check_chunk_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def check_overlap_seconds(value) -> float:
    """``overlap_seconds`` as a finite float >= 0; ``ValueError`` (one line) otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"overlap_seconds {value!r}: give seconds >= 0 (the default is 1)")
    return number


@torch.inference_mode()
def enhance_recording(model, audio, sample_rate: int = SAMPLE_RATE, chunk_seconds: float = 10.0,
                      overlap_seconds: float = 1.0, progress: bool = False,
                      level_window: tuple[float, float] | None = LEVEL_WINDOW_DBFS):
    """Enhance a recording at any rate with ``model`` (a :class:`dcu.DCUnet`): numpy or tensor,
    ``(time,)`` or ``(channels, time)``, each channel on its own.

    Audio is resampled to the model's 16 kHz and back, and processed in overlapping chunks of
    ``chunk_seconds`` (1 to 600) cross-faded over ``overlap_seconds``, so memory stays bounded
    for recordings of any length (``progress=True`` shows a bar over the chunks). A channel whose
    level lies outside ``level_window`` (dBFS, :mod:`dcu.level`) is scaled to its nearest edge
    for the model and scaled back after; ``None`` feeds every level as it is. Returns float32
    audio of the input's type, shape and rate. The model's train/eval mode is restored.
    """
    chunk_seconds, overlap_seconds = check_chunk_seconds(chunk_seconds), \
        check_overlap_seconds(overlap_seconds)
    arr = _as_audio(audio)
    # each channel's level as given (the rate it came at), as enhance_file reports it; scaling
    # commutes with resampling, so the gain is applied at 16 kHz
    gains = np.array([level_gain(ch, level_window) if level_window else 1.0
                      for ch in arr.reshape(-1, arr.shape[-1])], dtype=np.float32)[:, None]
    x = resample(arr, sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else arr
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        out = chunked(lambda t: model(t.to(device)).cpu(),
                      torch.from_numpy(np.ascontiguousarray(x.reshape(-1, x.shape[-1]) * gains)),
                      int(chunk_seconds * SAMPLE_RATE), int(overlap_seconds * SAMPLE_RATE),
                      align=model.architecture.frame_multiple * model.config.hop_length,
                      progress=progress)
    finally:
        model.train(was_training)
    y = (out.numpy() / gains).reshape(x.shape)
    if sample_rate != SAMPLE_RATE:
        y = fit_length(resample(y, SAMPLE_RATE, sample_rate), arr.shape[-1])
    y = y.astype(np.float32)
    return torch.from_numpy(y).to(audio.device) if isinstance(audio, torch.Tensor) else y


def _as_audio(audio) -> np.ndarray:
    """``audio`` (numpy or tensor) as float32 numpy, refused in one line unless it is real
    floating-point ``(time,)`` or ``(channels, time)`` audio with finite samples."""
    is_numpy = not isinstance(audio, torch.Tensor)
    dtype = np.asarray(audio).dtype if is_numpy else audio.dtype
    if (is_numpy and not np.issubdtype(dtype, np.floating)) or \
            (not is_numpy and (audio.is_complex() or not audio.is_floating_point())):
        raise TypeError(f"enhance expects real floating-point audio in [-1, 1], got {dtype}; "
                        "convert integer PCM with x / 32768")
    arr = np.asarray(audio, dtype=np.float32) if is_numpy else audio.detach().cpu().float().numpy()
    if arr.ndim not in (1, 2):
        raise ValueError(f"enhance expects (time,) or (channels, time) audio, got shape {arr.shape}")
    if arr.shape[-1] == 0:
        raise ValueError("enhance got empty audio (0 samples)")
    if not np.isfinite(arr).all():
        raise ValueError("enhance got NaN or infinite samples; clean the input first")
    return arr


def chunked(fn, x: torch.Tensor, chunk: int, overlap: int, align: int = 1,
            progress: bool = False) -> torch.Tensor:
    """Apply ``fn`` to ``(batch, time)`` audio in chunks cross-faded over ``overlap`` samples.

    Chunks start at multiples of ``align`` samples; with ``align`` = the model's frame multiple
    times its hop, every chunk sees the same STFT frames and stride grid as the whole signal, so
    chunking changes the output only near the seams.
    """
    n = x.shape[-1]
    if n <= chunk:
        return fn(x)
    chunk = max(align, chunk // align * align)
    step = max(align, (chunk - min(overlap, chunk // 2)) // align * align)
    overlap = chunk - step
    out = torch.zeros_like(x)
    weight = torch.zeros(n)
    fade = torch.linspace(0, 1, overlap + 2)[1:-1] if overlap else torch.ones(0)
    starts = range(0, max(1, n - overlap), step)
    if progress:
        starts = tqdm(starts, desc="chunks", unit="chunk", leave=False)
    for start in starts:
        end = min(start + chunk, n)
        seg = fn(x[:, start:end])
        w = torch.ones(end - start)
        if start > 0 and overlap:
            w[:overlap] = fade[: min(overlap, end - start)]
        if end < n and overlap:
            w[-overlap:] = torch.minimum(w[-overlap:], fade.flip(0))
        out[:, start:end] += seg * w
        weight[start:end] += w
        if end == n:
            break
    return out / weight.clamp_min(1e-8)


def enhance_file(model, src, dst, overwrite: bool = False, chunk_seconds: float = 10.0,
                 dnsmos: bool = False, level_window=LEVEL_WINDOW_DBFS, enhancer=None) -> dict:
    """Enhance one file into ``dst`` at the input's rate and channel count; returns a summary
    (``level_dbfs``: the input's level per channel; ``enhancer``: hop by hop, dcu.jobs.live)."""
    src, dst = Path(src), output_path(Path(dst))
    if dst.resolve() == src.resolve():
        raise AudioError(f"{shown(src)}: the output would overwrite the input; choose another --out")
    if dst.exists() and not overwrite:
        raise AudioError(f"{shown(dst)}: already exists; delete it, choose another --out, or pass --overwrite")
    chunk_seconds = check_chunk_seconds(chunk_seconds)
    wav, rate = read_audio(src)  # (channels, time) at the file's rate, within dcu's limits
    out, streamed = stream_recording(enhancer, wav, rate, level_window) if enhancer else (
        enhance_recording(model, wav, rate, chunk_seconds=chunk_seconds, level_window=level_window,
                          progress=wav.shape[-1] / rate > 6 * chunk_seconds), {})
    try:
        save_audio(dst, out if out.shape[0] > 1 else out[0], rate, overwrite=overwrite)
    except PermissionError:
        raise AudioError(f"{shown(dst)}: cannot write here (permission denied); choose another --out") from None
    except OSError as exc:
        raise AudioError(f"{shown(dst)}: cannot write ({exc.strerror or exc}); choose another --out") from None
    summary = {"input": str(src), "output": str(dst), "seconds": wav.shape[-1] / rate,
               "channels": wav.shape[0], "sample_rate": rate,
               "level_dbfs": [level_dbfs(ch) for ch in wav], **streamed}
    if dnsmos:
        mono_in, mono_out = wav.mean(0), out.mean(0)
        summary["dnsmos_before"] = metrics.dnsmos(mono_in, rate)
        summary["dnsmos_after"] = metrics.dnsmos(mono_out, rate)
    return summary


def enhance_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="dcu enhance", description="Enhance noisy speech recordings "
                                "(WAV/FLAC/OGG, any rate, any length, per channel).",
                                epilog="Exit status: 0 all files enhanced; 1 a file or an output "
                                "was refused (each named on stderr); 2 bad options; 130 Ctrl-C.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders")
    p.add_argument("--model", default="dcunet20", help="shipped name (dcunet10/16/20) or checkpoint path")
    p.add_argument("--out", metavar="DIR", help="write outputs here, keeping each input's file name")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    p.add_argument("--chunk-seconds", type=chunk_seconds_arg, default=10.0,
                   help="chunk length for long files, 1 to 600 s (default: 10)")
    p.add_argument("--dnsmos", action="store_true", help="print reference-free DNSMOS before/after")
    p.add_argument("--keep-level", action="store_true", help="feed the model each channel's level "
                   "as recorded (default: scale it into -35..-13 dBFS and back, see dcu.level)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (bfloat16 where the device runs it natively), fp32 or bf16")
    p.add_argument("--stream", action="store_true", help="hop by hop, as live (a causal model)")
    args = p.parse_args(argv)
    flush_denormals()
    fail = "dcu enhance: error: "
    if args.out:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            _say(f"{fail}{out}: exists and is not a folder; choose another --out")
            return 1
    notes: list = []
    jobs, errors = find_inputs(args.inputs, args.out, notes)
    for line in notes:
        _say(f"dcu enhance: note: {line}")
    problem = plan_outputs(jobs, args.inputs, args.out, args.overwrite)
    if problem:
        _say(fail + problem)
        return 1
    if args.out:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _say(f"{fail}{out}: cannot create the output folder ({exc.strerror}); choose another --out")
            return 1
        if not os.access(out, os.W_OK):
            _say(f"{fail}{out}: output folder is not writable; choose another --out")
            return 1
    try:
        model = optimize(load(args.model, map_location=torch.device(args.device)), args.precision)
        enhancer = streaming_enhancer(model, args.model, args.precision) if args.stream else None
    except Exception as exc:  # a bad name or file, an unknown or missing device, not causal
        _say(fail + describe_failure(args.model, exc))
        return 1
    for e in errors:
        _say(fail + e)
    failed = len(errors)
    for src, dst in tqdm(jobs, desc="enhance", unit="file", disable=len(jobs) < 2):
        try:
            s = enhance_file(model, src, dst, args.overwrite, args.chunk_seconds, args.dnsmos,
                             None if args.keep_level else LEVEL_WINDOW_DBFS, enhancer)
        except Exception as exc:  # any failure stays with its file; Ctrl-C still stops all
            _say(fail + describe_failure(src, exc))
            failed += 1
            continue
        line = (f"{shown(s['input'])} -> {shown(s['output'])} ({s['seconds']:.1f} s, {s['channels']} ch, "
                f"{s['sample_rate']} Hz)")
        outside = [f"{v:.1f}" for v in s["level_dbfs"] if level_gain_db(v) and not args.keep_level]
        if outside:
            low, high = LEVEL_WINDOW_DBFS
            line += (f"\n  level {', '.join(outside)} dBFS, outside {low:g} to {high:g}: enhanced at the "
                     "nearest edge and scaled back (--keep-level: as recorded)")
        line += f"\n  {describe_streaming(s)}" if enhancer else ""
        if args.dnsmos:
            b, a = s["dnsmos_before"], s["dnsmos_after"]
            line += (f"\n  DNSMOS  SIG {b['sig']:.2f} -> {a['sig']:.2f}   BAK {b['bak']:.2f} -> "
                     f"{a['bak']:.2f}   OVRL {b['ovrl']:.2f} -> {a['ovrl']:.2f}")
        tqdm.write(line)
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(enhance_cli(sys.argv[1:]))
