"""Write what checkpoints that do not ship make of a few shipped recordings, for the book to play.

    python -m dcu.scripts.listening --out data/results/audio/causal \\
        --model offline10=runs/voices10/best.pt --model causal10=runs/voices10_causal/best.pt \\
        --clip demo:0:0-8 --clip test:0

A trained model too large for ``data/`` can still be heard: each ``--clip SET:INDEX[:START-END]``
(a paired split of the shipped corpus, or ``demo``; the INDEX-th pair; optionally only START to
END seconds of it) is enhanced by every ``--model`` at fp32 and written as 16-bit FLAC,
``{set}_{name}_{label}.flac``, beside ``listening.json``: for each clip the noisy file (relative to
``data/``), the excerpt's first and last sample and the output of each model; for each model the
checkpoint's architecture, step and tensor checksum. The noisy excerpt is not copied: it ships.
Files that exist are never replaced (delete the folder to redo it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dcu.audio import load_audio, save_audio
from dcu.base.atomic import write_json
from dcu.corpus import corpus_dir
from dcu.engine import optimize
from dcu.jobs.enhance import enhance_recording
from dcu.scripts.compare_models import eval_pairs
from dcu.stft import SAMPLE_RATE
from dcu.store.checkpoint import load


def parse_clip(text: str) -> tuple[str, int, float | None, float | None]:
    """``"demo:0:8-18"`` -> ``("demo", 0, 8.0, 18.0)``; ``"test:2"`` -> ``("test", 2, None, None)``."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError
        start = end = None
        if len(parts) == 3:
            start, end = (float(v) for v in parts[2].split("-"))
            if not 0 <= start < end:
                raise ValueError
        return parts[0], int(parts[1]), start, end
    except ValueError:
        raise SystemExit(f"--clip {text!r}: expected SET:INDEX or SET:INDEX:START-END (seconds, "
                         "START < END), e.g. demo:0:8-18") from None


def describe(checkpoint: str, model) -> dict:
    meta = model.metadata
    return {"checkpoint": "/".join(Path(checkpoint).parts[-2:]), "arch": model.config.arch,
            "causal": model.config.causal, "n_fft": model.config.n_fft, "step": meta.get("step"),
            "tensor_sha256": meta.get("tensor_sha256")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1].strip())
    p.add_argument("--out", required=True, type=Path, help="folder to write (must not hold the files)")
    p.add_argument("--model", action="append", required=True, metavar="LABEL=CHECKPOINT")
    p.add_argument("--clip", action="append", required=True, metavar="SET:INDEX[:START-END]")
    args = p.parse_args(argv)
    models = {}
    for spec in args.model:
        label, sep, path = spec.partition("=")
        if not sep or not label.isidentifier():
            raise SystemExit(f"--model {spec!r}: expected LABEL=CHECKPOINT with a plain LABEL "
                             "(letters, digits, _), e.g. causal10=runs/voices10_causal/best.pt")
        models[label] = (path, load(path))
    runnable = {label: optimize(model, "fp32") for label, (_, model) in models.items()}
    data = corpus_dir()
    clips = []  # (set, noisy path, first sample, last sample, excerpt, {label: output path})
    for spec in args.clip:
        set_name, index, start, end = parse_clip(spec)
        pairs = eval_pairs(set_name)
        if not 0 <= index < len(pairs):
            raise SystemExit(f"--clip {spec!r}: {set_name} has {len(pairs)} pairs (index 0 to "
                             f"{len(pairs) - 1})")
        name, _, noisy_path = pairs[index]
        noisy = load_audio(noisy_path)
        first = 0 if start is None else round(start * SAMPLE_RATE)
        last = len(noisy) if end is None else min(len(noisy), round(end * SAMPLE_RATE))
        if first >= last:
            raise SystemExit(f"--clip {spec!r}: {noisy_path.name} is only "
                             f"{len(noisy) / SAMPLE_RATE:.1f} s long")
        outputs = {label: args.out / f"{set_name}_{name}_{label}.flac" for label in models}
        clips.append((set_name, noisy_path, first, last, noisy[first:last], outputs))
    targets = [args.out / "listening.json"] + [out for *_, outputs in clips for out in outputs.values()]
    if taken := [t for t in targets if t.exists()]:
        raise SystemExit(f"{taken[0]}: already exists; nothing was written (delete {args.out} "
                         "to redo it, or choose another --out)")
    done = []
    for set_name, noisy_path, first, last, excerpt, outputs in clips:
        for label, out in outputs.items():
            enhanced = enhance_recording(runnable[label], excerpt, SAMPLE_RATE)
            save_audio(out, np.asarray(enhanced), SAMPLE_RATE)
            print(f"{out} ({len(excerpt) / SAMPLE_RATE:.1f} s)", flush=True)
        done.append({"set": set_name, "noisy": noisy_path.resolve().relative_to(data.resolve()).as_posix(),
                     "first_sample": first, "last_sample": last,
                     "outputs": {label: out.name for label, out in outputs.items()}})
    write_json(args.out / "listening.json",
               {"tool": "dcu.scripts.listening", "precision": "fp32", "sample_rate": SAMPLE_RATE,
                "models": {label: describe(path, m) for label, (path, m) in models.items()},
                "clips": done}, overwrite=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
