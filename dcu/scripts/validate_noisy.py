"""Check dcu's metrics against the paper's "noisy input" row on the real VoiceBank+DEMAND pairs.

    python -m dcu.scripts.validate_noisy [--data DIR] [--jobs N]      (from the repository root)

Scores every unprocessed noisy file against its clean reference (dcu.jobs.evaluate.evaluate_pairs,
parallel, with a progress bar), compares the means with Choi et al. (2019), Table 2, and writes

    data/validation/noisy_724.json   means, 95 % CIs, differences, pass/fail, per-file values
    data/validation/README.md        the comparison table

Exit status 0 when every metric is within its tolerance.  tests/test_metrics.py recomputes a
subset of the per-file values stored here, so a change to the metric code fails the tests.
"""

from __future__ import annotations

import argparse
import platform
import time
from importlib.metadata import version
from pathlib import Path

from dcu.base.atomic import atomic_write, write_json
from dcu.data import PairedFolder
from dcu.jobs.evaluate import evaluate_pairs

REPO = Path(__file__).resolve().parents[2]  # dcu/scripts/ -> the repository root
REPORT_DIR = REPO / "data" / "validation"

PAPER = {"pesq": 1.97, "csig": 3.35, "cbak": 2.44, "covl": 2.63, "ssnr": 1.68}
TOLERANCE = {"pesq": 0.05, "csig": 0.05, "cbak": 0.05, "covl": 0.05, "ssnr": 0.3}
DEFAULT_DATA = REPO.parent / "shared" / "data" / "voicebank_demand_test"


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "pesq", "pystoi"):
        out[pkg] = version(pkg)
    return out


def _readme(doc: dict) -> str:
    lines = [
        "# Validation: the paper's noisy row",
        "",
        f"Unprocessed noisy input against clean reference on the {doc['n_files']} real "
        "VoiceBank+DEMAND test pairs (the paper used all 824; 100 are not available offline). "
        "Produced by `python -m dcu.scripts.validate_noisy`; per-file values in "
        "`noisy_724.json`.",
        "",
        "| metric | paper | dcu (mean ± 95% CI) | difference | tolerance | within |",
        "|---|---|---|---|---|---|",
    ]
    for m, ref in PAPER.items():
        lines.append(
            f"| {m.upper()} | {ref:.2f} | {doc['ours'][m]:.3f} ± {doc['ci95'][m]:.3f} | "
            f"{doc['difference'][m]:+.3f} | {TOLERANCE[m]} | "
            f"{'yes' if doc['within'][m] else 'NO'} |"
        )
    lines += [
        "",
        "Also computed (no published noisy figure): "
        + ", ".join(f"{m.upper().replace('_', '-')} {doc['ours'][m]:.3f}"
                    for m in ("stoi", "estoi", "si_sdr")) + ".",
        "",
        "Settings: PESQ is the wide-band MOS-LQO of ITU-T P.862.2 (`pesq` package, mode 'wb'), "
        "also used inside the composites; LLR, WSS and segSNR on 30 ms Hann frames with a 7.5 ms "
        "hop, LPC order 16, LLR not capped, LLR and WSS over the best 95 % of frames, segSNR "
        "frames clamped to [-10, 35] dB (`dcu/composite.py`).",
        "",
        f"Run: {doc['seconds']:.0f} s with {doc['jobs']} worker processes; "
        + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder with clean/ and noisy/ (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPORT_DIR, help="where to write the report (default: %(default)s)")
    args = p.parse_args(argv)

    folder = PairedFolder(args.data / "clean", args.data / "noisy")
    pairs = [(c.stem, c, n) for n, c in folder.pairs]
    start = time.perf_counter()
    summary, rows = evaluate_pairs(pairs, None, jobs=args.jobs)
    seconds = time.perf_counter() - start

    ours = {m: s["mean"] for m, s in summary.items()}
    doc = {
        "paper": PAPER,
        "ours": ours,
        "ci95": {m: s["ci95"] for m, s in summary.items()},
        "difference": {m: ours[m] - PAPER[m] for m in PAPER},
        "tolerance": TOLERANCE,
        "within": {m: abs(ours[m] - PAPER[m]) <= TOLERANCE[m] for m in PAPER},
        "n_files": len(rows),
        "jobs": args.jobs,
        "seconds": seconds,
        "versions": _versions(),
        "files": rows,
    }
    write_json(args.out / "noisy_724.json", doc, indent=None)
    atomic_write(args.out / "README.md", lambda tmp: tmp.write_text(_readme(doc)))
    print(_readme(doc))
    return 0 if all(doc["within"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
