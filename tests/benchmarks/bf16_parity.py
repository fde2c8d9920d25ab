"""Does bfloat16 cost anything? Inference and training parity against float32.

Not a unit test and not run by pytest (minutes of CPU). Two checks, each written to a JSON file
under data/results/ and quoted in tests/benchmarks/README.md and book chapter 6::

    # (a) inference: one model enhances every test file in float32 and in bfloat16
    python tests/benchmarks/bf16_parity.py inference --model dcunet20 \
        --json data/results/bf16_parity_inference.json
    # (b) training: DCUnet-10 trained 300 steps in bf16 and in fp32 from the same seed, plus a
    #     second fp32 seed for the seed-to-seed spread (driver: runs/parity.sh in the commit
    #     that added this file), each scored on the whole test split
    python tests/benchmarks/bf16_parity.py training --runs runs/parity \
        --json data/results/bf16_parity_training.json

(a) reports, per file, the SI-SDR of the bf16 output against the fp32 output (how far bf16
rounding moves the waveform) and the test metrics of both, with paired differences and their 95%
intervals (t-based, over files). (b) reports the paired differences bf16 - fp32 (same seed) next
to fp32 seed 1 - fp32 seed 0: bf16 "costs nothing" when its difference is inside the interval of
zero and no larger than what changing the seed does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from dcu import load  # noqa: E402
from dcu.engine import optimize  # noqa: E402
from dcu.base.atomic import write_json  # noqa: E402
from dcu.data import list_pairs  # noqa: E402
from dcu.engine import optimize  # noqa: E402
from dcu.jobs.enhance import enhance_recording  # noqa: E402
from dcu.jobs.evaluate import evaluate_pairs  # noqa: E402
from dcu.metrics import METRICS, si_sdr  # noqa: E402


def paired(a: list, b: list) -> dict:
    """Mean of ``b - a`` over files with its t-based 95% half-interval."""
    from scipy import stats

    d = np.array([y - x for x, y in zip(a, b) if x is not None and y is not None
                  and math.isfinite(x) and math.isfinite(y)])
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95": half, "n": int(len(d))}


def score(model, pairs, jobs: int, keep: dict | None = None, label: str = ""):
    """Per-file metric rows of ``model`` on ``pairs``; outputs stored in ``keep[label]``."""
    def enhance(x, sr):
        y = enhance_recording(model, x, sr)
        if keep is not None:
            keep.setdefault(label, []).append(y)
        return y

    triples = [(Path(c).stem, str(c), str(n)) for n, c in pairs]
    summary, rows = evaluate_pairs(triples, enhance, jobs=jobs)
    return summary, rows


def inference(args) -> dict:
    pairs = list_pairs("test")
    outputs: dict = {}
    result = {"model": args.model, "files": len(pairs), "precisions": {}}
    rows = {}
    for precision in ("fp32", "bf16"):
        model = optimize(load(args.model), precision)
        summary, rows[precision] = score(model, pairs, args.jobs, outputs, precision)
        result["precisions"][precision] = summary
    closeness = [si_sdr(a, b) for a, b in zip(outputs["fp32"], outputs["bf16"])]
    result["si_sdr_bf16_vs_fp32"] = {"median": float(np.median(closeness)),
                                     "min": float(np.min(closeness)),
                                     "mean": float(np.mean(closeness)), "per_file": closeness}
    result["paired_bf16_minus_fp32"] = {m: paired([r[m] for r in rows["fp32"]],
                                                  [r[m] for r in rows["bf16"]]) for m in METRICS}
    print(f"{args.model} on {len(pairs)} test files: SI-SDR of bf16 output vs fp32 output "
          f"median {result['si_sdr_bf16_vs_fp32']['median']:.1f} dB, "
          f"worst {result['si_sdr_bf16_vs_fp32']['min']:.1f} dB")
    for m in METRICS:
        a, b = result["precisions"]["fp32"][m]["mean"], result["precisions"]["bf16"][m]["mean"]
        d = result["paired_bf16_minus_fp32"][m]
        print(f"  {m:<6} fp32 {a:8.4f}  bf16 {b:8.4f}  bf16-fp32 {d['mean']:+.4f} +- {d['ci95']:.4f}")
    return result


def training(args) -> dict:
    pairs = list_pairs("test")
    runs = {"bf16 seed 0": "bf16_seed0", "fp32 seed 0": "fp32_seed0", "fp32 seed 1": "fp32_seed1"}
    result = {"files": len(pairs), "runs": {}}
    rows = {}
    for name, folder in runs.items():
        path = Path(args.runs) / folder
        model = optimize(load(path / "last.pt"), "fp32")  # every run scored the same way
        log = json.loads((path / "log.json").read_text())
        cached = path / "test_rows.json"  # a run is scored once, even if the script is rerun
        if cached.exists():
            summary, rows[name] = json.loads(cached.read_text())
        else:
            summary, rows[name] = score(model, pairs, args.jobs)
            write_json(cached, [summary, rows[name]])
        result["runs"][name] = {"steps": model.metadata["step"],
                                "precision": model.metadata.get("precision"),
                                "cpu_seconds": model.metadata.get("clock", {}).get("cpu_seconds"),
                                "log": log, "test": summary}
    per = lambda name, m: [r[m] for r in rows[name]]  # noqa: E731
    result["paired"] = {
        "bf16 - fp32 (seed 0)": {m: paired(per("fp32 seed 0", m), per("bf16 seed 0", m)) for m in METRICS},
        "fp32 seed 1 - seed 0": {m: paired(per("fp32 seed 0", m), per("fp32 seed 1", m)) for m in METRICS}}
    for label, diffs in result["paired"].items():
        print(label)
        for m, d in diffs.items():
            print(f"  {m:<6} {d['mean']:+.4f} +- {d['ci95']:.4f}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("inference")
    a.add_argument("--model", default="dcunet20")
    b = sub.add_parser("training")
    b.add_argument("--runs", default="runs/parity")
    b.add_argument("--score-only", nargs="+", metavar="FOLDER",
                   help="score these finished run folders now (cached beside them) and stop")
    for s in (a, b):
        s.add_argument("--json", type=Path, required=True, help="result file (a new file)")
        s.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    if args.json.exists() and not getattr(args, "score_only", None):
        p.error(f"{args.json} exists; choose a new file name")
    if args.what == "training" and args.score_only:
        for name in args.score_only:  # score finished runs now, the rest later
            path = Path(args.runs) / name
            model = optimize(load(path / "last.pt"), "fp32")
            summary, rows = score(model, list_pairs("test"), args.jobs)
            write_json(path / "test_rows.json", [summary, rows])
            print(f"scored {name}: PESQ {summary['pesq']['mean']:.3f}")
        return 0
    result = inference(args) if args.what == "inference" else training(args)
    write_json(args.json, result)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
