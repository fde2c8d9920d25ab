"""Score checkpoints and baselines on every evaluation set, with paired differences (issue 16).

    python -m dcu.scripts.compare_models --out data/results/general.json \\
        --model dcunet10=data/checkpoints/dcunet10.pt --model new10=runs/general10/best.pt \\
        --against new10=dcunet10 [--sets test,unseen,p239_test,demo] [--precision fp32]

Each set (a paired split of the shipped corpus, or ``demo``: the conversation in corpus/demo) is
scored for the noisy input, the Wiener filter, spectral gating and every ``--model``, with the
eight metrics of ``dcu evaluate`` (same code: :func:`dcu.jobs.evaluate.evaluate_pairs`) plus DNSMOS
(``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``; reference-free). Every model is compared file by
file (:func:`dcu.results.paired`, mean and 95 % interval) with the noisy input and the Wiener
filter, and with the model(s) named by each ``--against NEW=OLD[,OLD2]`` (given again later, for
rows already scored, it only adds the comparisons). The JSON keeps the per-file rows
and is rewritten (atomically) after each method, so an interrupted run continues where it stopped
and a method already scored is not scored again (delete its entry, or the file, to redo it). A
later run may add models to the same file: ``meta`` keeps every model's source and comparison.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dcu.base.atomic import write_json
from dcu.baselines import BASELINES
from dcu.corpus import corpus_dir, list_pairs
from dcu.engine import optimize
from dcu.jobs.enhance import enhance_recording
from dcu.jobs.evaluate import evaluate_pairs
from dcu.metrics import METRICS, dnsmos
from dcu.results import finite, paired, summarize
from dcu.stft import SAMPLE_RATE
from dcu.store.checkpoint import load

DNSMOS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
ALL_METRICS = METRICS + DNSMOS


def eval_pairs(name: str) -> list[tuple[str, Path, Path]]:
    """``(name, clean, noisy)`` of a set: a split of the shipped corpus, or ``demo``."""
    if name == "demo":
        demo = corpus_dir() / "corpus" / "demo"
        return [("conversation", demo / "conversation_clean.flac", demo / "conversation_noisy.flac")]
    return [(clean.stem, clean, noisy) for noisy, clean in list_pairs(name)]


def significant(rows: list, digits: int = 6) -> list:
    """Per-file rows with every float to ``digits`` significant digits: far below any metric's
    precision, and the file stays small (written without indentation too, it is read by code)."""
    return [{k: float(f"{v:.{digits}g}") if isinstance(v, float) else v for k, v in row.items()}
            for row in rows]


def score(pairs, enhance) -> tuple[dict, list]:
    """Intrusive metrics as ``dcu evaluate`` computes them, plus DNSMOS of the same outputs."""
    outputs = []

    def remembered(noisy, sample_rate):  # enhance once; DNSMOS reads the same output
        outputs.append(np.asarray(enhance(noisy, sample_rate), dtype=np.float32))
        return outputs[-1]

    # one process: files are enhanced in order, and any failure raises, so rows match outputs
    _, rows = evaluate_pairs(pairs, remembered, jobs=1, progress=True)
    for row, y in zip(rows, outputs, strict=True):
        mos = dnsmos(y, SAMPLE_RATE)
        row.update({f"dnsmos_{k}": float(mos[k]) for k in ("sig", "bak", "ovrl")})
    return summarize(rows, ALL_METRICS), rows


def comparisons(methods: dict, against: dict) -> dict:
    """``{"A - B": paired summary}``: each model against noisy, Wiener, and its ``--against``
    (one label, or several separated by commas)."""
    out = {}
    for label, entry in methods.items():
        if entry["kind"] != "model":
            continue
        for base in ("noisy", "wiener", *against.get(label, "").split(",")):
            if base in methods:
                out[f"{label} - {base}"] = paired(methods[base]["files"], entry["files"], ALL_METRICS)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="JSON to write (and resume from)")
    p.add_argument("--model", action="append", default=[], metavar="LABEL=CHECKPOINT")
    p.add_argument("--against", action="append", default=[], metavar="NEW=OLD[,OLD2]")
    p.add_argument("--sets", default="test,unseen,p239_test,demo")
    p.add_argument("--baselines", default="noisy,wiener,noisereduce")
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    args = p.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.model)
    against = dict(a.split("=", 1) for a in args.against)
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"sets": {}}
    # meta accumulates: a later run that adds models keeps the sources of the rows already there
    meta = doc.get("meta", {})
    if meta.get("precision", args.precision) != args.precision:
        raise SystemExit(f"{args.out}: its rows were scored at --precision {meta['precision']}, "
                         f"not {args.precision}; use that precision or another --out")
    against = {**meta.get("against", {}), **against}
    doc["meta"] = {"tool": "dcu.scripts.compare_models", "precision": args.precision,
                   "models": {**meta.get("models", {}), **models}, "against": against}
    todo = [(b, "baseline", b) for b in args.baselines.split(",") if b] + \
           [(label, "model", path) for label, path in models.items()]
    for set_name in args.sets.split(","):
        pairs = eval_pairs(set_name)
        entry = doc["sets"].setdefault(set_name, {"files": [n for n, _, _ in pairs], "methods": {}})
        for label, kind, source in todo:
            if label in entry["methods"]:
                continue
            print(f"{set_name}: {label} ({len(pairs)} files)", flush=True)
            if kind == "baseline":
                enhance = BASELINES[source]
            else:
                model = optimize(load(source), args.precision)

                def enhance(x, sr, model=model):
                    return enhance_recording(model, x, sr)
            summary, rows = score(pairs, enhance)
            entry["methods"][label] = {"kind": kind, "source": source, "summary": summary,
                                       "files": significant(rows)}
            entry["paired"] = comparisons(entry["methods"], against)
            write_json(args.out, finite(doc), indent=None)
        entry["paired"] = comparisons(entry["methods"], against)  # also a new --against alone
        write_json(args.out, finite(doc), indent=None)
        print(f"{set_name}: " + ", ".join(f"{k} PESQ {v['summary']['pesq']['mean']:.3f}"
                                          for k, v in entry["methods"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
