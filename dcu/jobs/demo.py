"""``dcu demo``, the README's first command: enhance a shipped noisy recording with a shipped
model and print PESQ, STOI and SI-SDR before and after, with what they show in plain words.

Book: book/01_introduction.ipynb
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

from dcu import metrics
from dcu.audio import AudioError, load_audio, save_audio
from dcu.base.guard import shown
from dcu.data import corpus_dir
from dcu.engine import PRECISIONS, flush_denormals, optimize
from dcu.jobs.folders import describe_failure
from dcu.jobs.enhance import enhance_recording
from dcu.stft import SAMPLE_RATE
from dcu.store.checkpoint import CheckpointError, load

__all__ = ["demo_cli", "describe_change"]


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
    shipped = sorted((root / "corpus" / "test" / "noisy").glob("*.flac"))
    return shipped[0].stem if shipped else "p232_009"  # the first shipped test pair


def demo_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="dcu demo", description="Enhance a shipped noisy recording "
                                "with a shipped model and print its metrics before and after.")
    p.add_argument("--model", default="dcunet20")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (bfloat16 where the CPU runs it natively), fp32 or bf16")
    p.add_argument("--file", help="test-split file name (default: a 2.5 dB one)")
    p.add_argument("--out", help="where to write the enhanced WAV (default: a temporary folder)")
    args = p.parse_args(argv)
    flush_denormals()
    root = corpus_dir()
    name = args.file or _demo_name(root)
    noisy_path = root / "corpus" / "test" / "noisy" / f"{name}.flac"
    clean_path = root / "corpus" / "test" / "clean" / f"{name}.flac"
    try:
        model = optimize(load(args.model), args.precision)
        noisy, clean = load_audio(noisy_path), load_audio(clean_path)
    except (CheckpointError, AudioError) as exc:
        print(shown(f"dcu demo: error: {exc}"), file=sys.stderr)
        return 1
    t = time.perf_counter()
    enhanced = enhance_recording(model, noisy)
    took = time.perf_counter() - t
    out = Path(args.out) if args.out else Path(tempfile.gettempdir()) / "dcu-demo"
    try:
        dst = save_audio(out / f"{name}_{model.config.arch}.wav", enhanced, SAMPLE_RATE, overwrite=True)
    except (AudioError, OSError) as exc:
        print(shown(f"dcu demo: error: {describe_failure(out, exc)}; choose another --out"), file=sys.stderr)
        return 1
    print(f"{model.config.arch} ({model.num_parameters() / 1e6:.2f} M parameters, "
          f"{model.config.mask} mask) enhanced {noisy_path.name} "
          f"({noisy.size / SAMPLE_RATE:.1f} s) in {took:.2f} s")
    scores = {label: {"PESQ": metrics.pesq(clean, wav), "STOI": metrics.stoi(clean, wav),
                      "SI-SDR": metrics.si_sdr(clean, wav)}
              for label, wav in (("noisy", noisy), ("enhanced", enhanced))}
    print(f"{'':8}{'PESQ':>8}{'STOI':>8}{'SI-SDR':>9}")
    for label, m in scores.items():
        print(f"{label:8}{m['PESQ']:8.2f}{m['STOI']:8.3f}{m['SI-SDR']:8.2f} dB")
    print(describe_change(scores["noisy"], scores["enhanced"]))
    print(f"wrote {dst}")
    return 0


DEMO_DIGITS = {"PESQ": 2, "STOI": 3, "SI-SDR": 2}  # as printed in the demo's table


def describe_change(before: dict, after: dict) -> str:
    """What the demo's numbers show, in plain words: which metrics the model raised, which it
    lowered and which it left unchanged, compared at the precision printed (higher is better for
    all three). A loss is called a loss: STOI 0.912 -> 0.909 reads "lowered STOI (-0.003)"."""
    verdicts = {"raised": [], "lowered": [], "left unchanged": []}
    for metric, digits in DEMO_DIGITS.items():
        delta = round(after[metric], digits) - round(before[metric], digits)
        step = 10.0 ** -digits
        text = f"{metric} ({delta:+.{digits}f}{' dB' if metric == 'SI-SDR' else ''})"
        key = "raised" if delta > step / 2 else "lowered" if delta < -step / 2 else "left unchanged"
        verdicts[key].append(text if key != "left unchanged" else metric)
    parts = [f"{verb} {' and '.join(items)}" for verb, items in verdicts.items() if items]
    line = "On this one file the model " + "; ".join(parts) + "."
    if verdicts["lowered"]:
        line += " It made the lowered metric(s) worse than the noisy input."
    return line + " One file proves little: `dcu evaluate` scores the test set with confidence intervals."


