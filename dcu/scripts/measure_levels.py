"""How the shipped models cope with quiet and loud input: ``data/results/levels.json``.

    python -m dcu.scripts.measure_levels [--out data/results/levels.json]
        [--models dcunet10,dcunet16,dcunet20] [--gains=-30,-20,-10,0,10] [--files N]

Every validation pair's noisy side is turned up or down by each gain (dB) and enhanced with
:func:`dcu.jobs.enhance.enhance_recording` twice: with its level window (the default: a channel outside
:data:`dcu.level.LEVEL_WINDOW_DBFS` is scaled to the nearest edge for the model and back) and
without it (``level_window=None``). SI-SDR and STOI of each output against the clean side are
scale-invariant or level-normalised, so the gain itself costs nothing: what changes is only how
the model copes. fp32 inference. A model already in ``--out`` is measured again and replaced;
the others are kept, so one model can be re-measured after it changed (chapter 9 reads the file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from dcu import metrics
from dcu.audio import load_audio
from dcu.base.atomic import write_json
from dcu.corpus import list_pairs
from dcu.engine import optimize
from dcu.jobs.enhance import enhance_recording
from dcu.level import LEVEL_WINDOW_DBFS, level_dbfs
from dcu.stft import SAMPLE_RATE
from dcu.store.checkpoint import load

WHAT = ("Shipped models on the 40 validation pairs with the noisy input turned up or down by a "
        "fixed gain (gains_db): per-file SI-SDR (dB) and STOI of the output with "
        "enhance_recording's level window (window, the default) and without it (none); "
        "input_level_dbfs: each file's level at each gain. fp32 inference; written by "
        "python -m dcu.scripts.measure_levels.")


def measure(model, audio, gains) -> dict:
    """``{"window"|"none": {gain: [{"si_sdr", "stoi"} per pair]}}`` for one model, on ``audio``:
    ``[(noisy, clean), ...]`` arrays."""
    out = {"window": {}, "none": {}}
    for g in tqdm(gains, desc="gains"):
        for mode, window in (("window", LEVEL_WINDOW_DBFS), ("none", None)):
            rows = []
            for noisy, clean in audio:
                est = enhance_recording(model, noisy * 10 ** (g / 20), SAMPLE_RATE, level_window=window)
                rows.append({"si_sdr": round(float(metrics.si_sdr(clean, est)), 4),
                             "stoi": round(float(metrics.stoi(clean, est)), 4)})
            out[mode][str(g)] = rows
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/results/levels.json"))
    p.add_argument("--models", default="dcunet10,dcunet16,dcunet20",
                   help="shipped names or checkpoint files, comma-separated")
    p.add_argument("--gains", default="-30,-20,-10,0,10", help="dB, comma-separated")
    p.add_argument("--set", default="valid", help="a paired split of the shipped corpus")
    p.add_argument("--files", type=int, default=0, help="only the first N pairs (0: all)")
    args = p.parse_args(argv)
    gains = [int(g) for g in args.gains.split(",")]
    pairs = list_pairs(args.set)[:args.files or None]
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    files = [Path(n).stem for n, _ in pairs]
    if doc and (doc.get("files") != files or doc.get("gains_db") != gains):
        raise SystemExit(f"{args.out}: measured on other files or gains; use another --out")
    audio = [(load_audio(n), load_audio(c)) for n, c in pairs]  # read once, used at every gain
    doc.update({"what": WHAT, "set": args.set, "files": files, "gains_db": gains,
                "window_dbfs": list(LEVEL_WINDOW_DBFS),
                "input_level_dbfs": {str(g): [round(level_dbfs(noisy * 10 ** (g / 20)), 2)
                                              for noisy, _ in audio] for g in gains}})
    doc.setdefault("models", {})
    for source in args.models.split(","):
        model = optimize(load(source), "fp32")
        name = model.config.arch
        print(f"{name} ({source})", flush=True)
        doc["models"][name] = measure(model, audio, gains)
        write_json(args.out, doc, indent=None)
    for name, m in doc["models"].items():
        print(name + ": " + ", ".join(f"{g:+d} dB {np.mean([r['si_sdr'] for r in m['window'][str(g)]]):.2f}"
                                      f" / {np.mean([r['si_sdr'] for r in m['none'][str(g)]]):.2f}"
                                      for g in gains) + "  (SI-SDR dB, window / none)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
