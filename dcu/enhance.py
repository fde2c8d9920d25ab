"""Enhancing recordings: files and folders of any format, rate, length and channel count.

``dcu enhance INPUT... [--model NAME_OR_PATH] [--out DIR]`` writes, for each input file, an
enhanced file at the input's rate and channel count (each channel enhanced on its own):

- with ``--out DIR``: ``DIR/<the input's file name>`` (files found inside an input folder keep
  their path relative to that folder);
- without: next to the input, as ``<name>_enhanced.<ext>``.

It never overwrites an input, and never replaces an existing output unless ``--overwrite`` is
given. Long recordings are processed in overlapping chunks (:meth:`dcu.DCUnet.enhance`), so
memory stays bounded whatever the length. A bad file gets a one-line error naming it; the other
files are still processed and the exit status is 1.

``dcu demo`` is the README's first command: enhance a shipped noisy recording with the shipped
DCUnet-20 and print PESQ/STOI/SI-SDR before and after.

Book: book/09_your_recordings.ipynb
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dcu.audio import AUDIO_EXTENSIONS, AudioError, load_audio, save_audio
from dcu.checkpoint import CheckpointError, load

SUFFIX = "_enhanced"


def find_inputs(inputs, out_dir=None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(input, output)`` path pairs for files and folders, and error lines for missing ones."""
    jobs, errors = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and
                           p.suffix.lower() in AUDIO_EXTENSIONS and SUFFIX not in p.stem)
            if not files:
                errors.append(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            for f in files:
                rel = f.relative_to(path)
                jobs.append((f, Path(out_dir) / path.name / rel if out_dir else _beside(f)))
        elif path.exists():
            jobs.append((path, Path(out_dir) / path.name if out_dir else _beside(path)))
        else:
            errors.append(f"{path}: no such file or folder")
    return jobs, errors


def _beside(path: Path) -> Path:
    ext = path.suffix if path.suffix.lower() in AUDIO_EXTENSIONS else ".wav"
    return path.with_name(f"{path.stem}{SUFFIX}{ext}")


def _output_path(out: Path) -> Path:
    """Keep the input's name; an extension soundfile cannot write becomes .wav."""
    return out if out.suffix.lower() in AUDIO_EXTENSIONS else out.with_suffix(".wav")


def enhance_file(model, src, dst, overwrite: bool = False, chunk_seconds: float = 10.0,
                 dnsmos: bool = False) -> dict:
    """Enhance one file into ``dst`` at the input's rate and channel count; returns a summary."""
    import soundfile as sf

    src, dst = Path(src), _output_path(Path(dst))
    if dst.resolve() == src.resolve():
        raise AudioError(f"{src}: the output would overwrite the input; choose another --out")
    if dst.exists() and not overwrite:
        raise AudioError(f"{dst}: already exists; delete it, choose another --out, or pass --overwrite")
    try:
        rate = sf.info(str(src)).samplerate
    except Exception:
        rate = None  # load_audio below gives the proper error
    wav = load_audio(src, sample_rate=None, mono=False)  # (channels, time) at the file's rate
    out = model.enhance(wav, rate, chunk_seconds=chunk_seconds,
                        progress=wav.shape[-1] / rate > 6 * chunk_seconds)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_audio(dst, out if out.shape[0] > 1 else out[0], rate, overwrite=overwrite)
    except PermissionError:
        raise AudioError(f"{dst}: cannot write here (permission denied); choose another --out") from None
    except OSError as exc:
        raise AudioError(f"{dst}: cannot write ({exc.strerror or exc}); choose another --out") from None
    summary = {"input": str(src), "output": str(dst), "seconds": wav.shape[-1] / rate,
               "channels": wav.shape[0], "sample_rate": rate}
    if dnsmos:
        from dcu.metrics import dnsmos as compute_dnsmos

        mono_in, mono_out = wav.mean(0), out.mean(0)
        summary["dnsmos_before"] = compute_dnsmos(mono_in, rate)
        summary["dnsmos_after"] = compute_dnsmos(mono_out, rate)
    return summary


def enhance_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="dcu enhance", description="Enhance noisy speech recordings "
                                "(WAV/FLAC/OGG, any rate, any length, per channel).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders")
    p.add_argument("--model", default="dcunet20", help="shipped name (dcunet10/16/20) or checkpoint path")
    p.add_argument("--out", metavar="DIR", help="write outputs here, keeping each input's file name")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="chunk length for long files")
    p.add_argument("--dnsmos", action="store_true", help="print reference-free DNSMOS before/after")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    if args.out:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            print(f"dcu enhance: error: {out}: exists and is not a folder; choose another --out")
            return 1
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"dcu enhance: error: {out}: cannot create the output folder ({exc.strerror}); "
                  "choose another --out")
            return 1
        if not os.access(out, os.W_OK):
            print(f"dcu enhance: error: {out}: output folder is not writable; choose another --out")
            return 1
    try:
        model = load(args.model, map_location=args.device)
    except (CheckpointError, ValueError) as exc:
        print(f"dcu enhance: error: {exc}")
        return 1
    jobs, errors = find_inputs(args.inputs, args.out)
    for e in errors:
        print(f"dcu enhance: error: {e}")
    failed = len(errors)
    for src, dst in tqdm(jobs, desc="enhance", unit="file", disable=len(jobs) < 2):
        try:
            s = enhance_file(model, src, dst, args.overwrite, args.chunk_seconds, args.dnsmos)
        except AudioError as exc:
            tqdm.write(f"dcu enhance: error: {exc}")
            failed += 1
            continue
        line = f"{s['input']} -> {s['output']} ({s['seconds']:.1f} s, {s['channels']} ch, {s['sample_rate']} Hz)"
        if args.dnsmos:
            b, a = s["dnsmos_before"], s["dnsmos_after"]
            line += (f"\n  DNSMOS  SIG {b['sig']:.2f} -> {a['sig']:.2f}   BAK {b['bak']:.2f} -> "
                     f"{a['bak']:.2f}   OVRL {b['ovrl']:.2f} -> {a['ovrl']:.2f}")
        tqdm.write(line)
    return 1 if failed else 0


# --------------------------------------------------------------------------- the main job
DEMO_FILE = "p232_023"  # one of the shipped test pairs at 2.5 dB SNR


def _demo_name(root: Path) -> str:
    """A shipped test file at the lowest SNR (falls back to the first test pair)."""
    table = root / "splits" / "test.csv"
    if table.exists():
        with open(table) as f:
            rows = list(csv.DictReader(f))
        for key in ("snr", "snr_db", "nominal_snr"):
            if rows and key in rows[0]:
                rows.sort(key=lambda r: (float(r[key]), r.get("name", r.get("file", ""))))
                name = rows[0].get("name") or rows[0].get("file") or rows[0][next(iter(rows[0]))]
                return Path(name).stem
    return DEMO_FILE


def demo_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="dcu demo", description="Enhance a shipped noisy recording "
                                "with a shipped model and print its metrics before and after.")
    p.add_argument("--model", default="dcunet20")
    p.add_argument("--file", help="test-split file name (default: a 2.5 dB one)")
    p.add_argument("--out", help="where to write the enhanced WAV (default: a temporary folder)")
    args = p.parse_args(argv)
    from dcu import metrics
    from dcu.data import corpus_dir

    torch.set_flush_denormal(True)
    root = corpus_dir()
    name = args.file or _demo_name(root)
    noisy_path = root / "corpus" / "test" / "noisy" / f"{name}.flac"
    clean_path = root / "corpus" / "test" / "clean" / f"{name}.flac"
    try:
        model = load(args.model)
        noisy, clean = load_audio(noisy_path), load_audio(clean_path)
    except (CheckpointError, AudioError) as exc:
        print(f"dcu demo: error: {exc}")
        return 1
    t = time.perf_counter()
    enhanced = model.enhance(noisy, 16000)
    took = time.perf_counter() - t
    out = Path(args.out) if args.out else Path(tempfile.gettempdir()) / "dcu-demo"
    out.mkdir(parents=True, exist_ok=True)
    dst = save_audio(out / f"{name}_{model.config.arch}.wav", enhanced, 16000, overwrite=True)
    print(f"{model.config.arch} ({model.num_parameters() / 1e6:.2f} M parameters, "
          f"{model.config.mask} mask) enhanced {noisy_path.name} "
          f"({noisy.size / 16000:.1f} s) in {took:.2f} s")
    print(f"{'':8}{'PESQ':>8}{'STOI':>8}{'SI-SDR':>9}")
    for label, wav in (("noisy", noisy), ("enhanced", enhanced)):
        print(f"{label:8}{metrics.pesq(clean, wav):8.2f}{metrics.stoi(clean, wav):8.3f}"
              f"{metrics.si_sdr(clean, wav):8.2f} dB")
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(enhance_cli(sys.argv[1:]))
