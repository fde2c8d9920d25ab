"""The ``dcu data`` command: download a full corpus into the cache (``download voicebank`` or
``download librispeech``), and describe the shipped corpus and what the cache holds (``info``).

The corpora themselves are :mod:`dcu.corpus` (through :mod:`dcu.data`), the download
:mod:`dcu.download` and :mod:`dcu.librispeech`.

Book: book/01_introduction.ipynb (the corpus)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dcu.base.guard import shown
from dcu.data import REBUILT, SPLITS, corpus_dir, split_table
from dcu.download import ARCHIVES, BASE_URL, DownloadError, cache_dir, prepare_voicebank, voicebank_dir
from dcu.librispeech import VOICES_SPLITS, prepare_librispeech, voices_dir

__all__ = ["data_cli", "describe_corpora"]

def _describe_split(folder: Path) -> str:
    clean = sorted((folder / "clean").glob("*.flac")) if (folder / "clean").is_dir() else []
    speakers = sorted({p.stem.split("_")[0] for p in clean})
    listed = ", ".join(speakers[:6]) + (", ..." if len(speakers) > 6 else "")
    return f"{len(clean)} pairs, {len(speakers)} speakers ({listed})"


def describe_corpora(cache=None) -> str:
    """What ``dcu data info`` prints: the shipped splits (files, minutes, speakers), the noise
    declaration, and whether the full corpus is ready in the cache (``cache`` as in
    :func:`dcu.download.cache_dir`)."""
    root = corpus_dir()
    lines = [f"shipped corpus: {root / 'corpus'}"]
    for split in SPLITS + ("train_extra",):
        path = root / "splits" / f"{split}.csv"
        if not path.exists():
            if split != "train_extra":  # a data folder built before it existed has none
                lines.append(f"  {split:11s} missing ({path})")
            continue
        rows = split_table(split)
        minutes = sum(float(r["duration_s"]) for r in rows) / 60
        speakers = sorted({r["speaker"] for r in rows})
        lines.append(f"  {split:11s} {len(rows):4d} pairs  {minutes:5.1f} min  speakers: {', '.join(speakers)}")
        if split == "train_extra":
            built = sum((root / "corpus" / "train" / "clean" / f"{r['name']}.flac").exists() for r in rows)
            lines[-1] += (f"; not shipped, {built} added to train (python -m dcu.scripts.build_corpus "
                          "--extra-train-pairs adds them)")
        elif split in REBUILT:
            lines[-1] += f"; noisy side rebuilt on first use into {cache_dir(cache) / 'corpus' / split / 'noisy'}"
    noise = root / "splits" / "noise.json"
    if noise.exists():
        decl = json.loads(noise.read_text())
        lines.append(f"  noise       train: {', '.join(decl['train'])}; held out: {', '.join(decl['heldout'])}")
    vb = voicebank_dir(cache)
    lines.append(f"cache: {cache_dir(cache)}")
    if (vb / "complete.json").exists():
        lines.append(f"  voicebank: complete in {vb}")
        for split in ("train", "valid", "test"):
            lines.append(f"    {split:5s} {_describe_split(vb / split)}")
    else:
        have = [a.name for a in ARCHIVES if (vb / "archives" / a.name).exists()]
        lines.append(f"  voicebank: not prepared ({len(have)} of {len(ARCHIVES)} archives downloaded); "
                     "run `dcu data download voicebank`")
    return "\n".join(lines)


def data_cli(argv: list[str]) -> int:
    """``dcu data download voicebank [--cache DIR]`` and ``dcu data info [--cache DIR]``."""
    parser = argparse.ArgumentParser(prog="dcu data", description="The shipped corpus and the full VoiceBank+DEMAND.")
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="download and convert a full corpus into the cache")
    dl.add_argument("corpus", choices=["voicebank", "librispeech"],
                    help="voicebank: the full VoiceBank+DEMAND (5.6 GB); librispeech: the listed "
                         "train-clean-100 and test-other utterances (6.7 GB of archives, 80 MB kept)")
    dl.add_argument("--source", help="librispeech: copy the listed utterances from this local LibriSpeech "
                                     "folder instead of downloading")
    dl.add_argument("--cache", help="cache folder (default $DCU_CACHE or ~/.cache/dcu)")
    dl.add_argument("--base-url", default=BASE_URL, help=argparse.SUPPRESS)
    info = sub.add_parser("info", help="show the shipped corpus and what is in the cache")
    info.add_argument("--cache", help="cache folder (default $DCU_CACHE or ~/.cache/dcu)")
    args = parser.parse_args(argv)
    if args.command == "info":
        print(describe_corpora(args.cache))
        return 0
    try:
        if args.corpus == "librispeech":
            kwargs = {} if args.base_url == BASE_URL else {"base_url": args.base_url}
            out = prepare_librispeech(args.cache, source=args.source, **kwargs)
            built = [voices_dir(split, args.cache) for split in VOICES_SPLITS]
        else:
            out = prepare_voicebank(args.cache, args.base_url)
    except (DownloadError, ValueError, FileNotFoundError) as err:
        print(shown(f"dcu data: error: {err}"), file=sys.stderr)
        return 1
    if args.corpus == "librispeech":
        print(f"LibriSpeech utterances ready in {out}; unseen-voices splits in {built[0].parent}; train on "
              "them with `dcu train --extra-speech p239,librispeech`, score with `dcu evaluate --split voices_test`")
        return 0
    print(f"VoiceBank+DEMAND ready in {out}; train with `dcu train --data voicebank`")
    return 0
