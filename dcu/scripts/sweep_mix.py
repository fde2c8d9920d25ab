"""Score weight mixes of a fine-tune with the weights it started from: ``data/results/weight_mix.json``.

    python -m dcu.scripts.sweep_mix --label DCUnet-20 --start OLD.pt --end runs/general20/best.pt
        [--alphas 0,0.25,0.5,0.75,1] [--out data/results/weight_mix.json] [--save-dir DIR]

For each ``alpha`` the mix ``(1 - alpha) * start + alpha * end`` (:func:`dcu.store.command.interpolate`)
is scored by :func:`dcu.training.validation.validate` on the validation sets the fine-tune selected its
checkpoint with (``valid,p239_valid``, ``--select-by pesq_stoi``: the same score, at the same
bf16 precision), so the mix can be chosen the way a checkpoint is, before any test file is seen.
``alpha=0`` is the start, ``1`` the end itself. Rows already in ``--out`` (same label and alpha)
are kept and not scored again; ``--save-dir`` keeps the mixes (float32) to evaluate further.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tqdm.auto import tqdm

from dcu.base.atomic import write_json
from dcu.corpus import validation_sets
from dcu.engine import optimize
from dcu.store.checkpoint import load, read_checkpoint, resolve, tensor_checksum
from dcu.store.command import interpolate
from dcu.training.validation import validate

WHAT = ("Validation score ((PESQ-1)/3.5 + STOI)/2 over valid and p239_valid, as dcu train "
        "--select-by pesq_stoi computes it, of weight mixes (1 - alpha) * start + alpha * end "
        "(dcu checkpoint interpolate) of each model's fine-tune with the weights it started from; "
        "written by python -m dcu.scripts.sweep_mix.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--label", required=True, help="the row's name, e.g. DCUnet-20")
    p.add_argument("--start", required=True, help="the weights the fine-tune started from")
    p.add_argument("--end", required=True, help="the fine-tune's checkpoint")
    p.add_argument("--alphas", default="0,0.25,0.5,0.75,1")
    p.add_argument("--out", type=Path, default=Path("data/results/weight_mix.json"))
    p.add_argument("--valid-sets", default="valid,p239_valid")
    p.add_argument("--valid-files", type=int, default=0, help="only the first N pairs of each set")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "auto"))
    p.add_argument("--save-dir", type=Path, help="keep each mix here as <label>_<alpha>.pt")
    args = p.parse_args(argv)
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"what": WHAT, "rows": []}
    sums = {k: tensor_checksum(read_checkpoint(resolve(f)))[:12] for k, f in
            (("start", args.start), ("end", args.end))}
    sets = validation_sets("shipped", args.valid_sets, args.valid_files)
    done = {(r["label"], r["alpha"]) for r in doc["rows"]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.save_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for alpha in tqdm([float(a) for a in args.alphas.split(",")], desc=args.label):
            if (args.label, alpha) in done:
                continue
            t = time.time()
            mix = folder / f"{args.label}_{alpha:g}.pt"
            if not mix.exists():
                interpolate(args.start, args.end, alpha, mix)
            r = validate(optimize(load(mix), args.precision), sets, "cpu", select_by="pesq_stoi")
            doc["rows"].append({"label": args.label, "alpha": alpha, "start": args.start,
                                "end": args.end, "tensor_sha256": sums,
                                "precision": args.precision, **r,
                                "seconds": round(time.time() - t, 1)})
            write_json(args.out, doc, indent=None)
    for r in sorted(doc["rows"], key=lambda r: (r["label"], r["alpha"])):
        if r["label"] == args.label:
            print(f"{r['label']} alpha {r['alpha']:.2f}: score {r['score']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
