"""Write the tables of the LibriSpeech utterances dcu uses and of the unseen-voices splits.

    python -m dcu.scripts.build_voices [SOURCE]      (from the repository root)

SOURCE is a LibriSpeech folder with ``train-clean-100/`` and ``test-other/<speaker>/``
(default ``../shared/data/librispeech``). Writes ``data/splits/librispeech.csv`` (every listed
utterance and the hash of its samples) and the recipes ``data/splits/voices_valid.csv`` and
``voices_test.csv`` (:mod:`dcu.librispeech`): test-other speakers 1998, 2033 and 3005 for
validation, 1688, 2609 and 3331 for the test (each set has one speaker of clearly higher pitch),
mixed at the VoiceBank+DEMAND test SNRs 2.5/7.5/12.5/17.5 dB with noise no training run reads:
for validation the DEMAND residuals of the shipped ``valid`` pairs and the first halves of the
held-out noise files, for the test those of the ``test`` pairs and the second halves.
Deterministic (fixed seed, sorted inputs); then copies the utterances into the cache
(``dcu data download librispeech --source SOURCE``) and builds both splits there once, which
checks every recipe. Nothing here downloads.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from dcu.audio import load_audio
from dcu.corpus import corpus_dir, split_table
from dcu.librispeech import load_noise, make_voices_recipe, mix_recipe, prepare_librispeech, voices_dir
from dcu.mixing import pcm16_sha256
from dcu.stft import SAMPLE_RATE

REPO = Path(__file__).resolve().parents[2]
SEED = 2026
SNRS = (2.5, 7.5, 12.5, 17.5)
SPEAKERS = {"voices_valid": ("1998", "2033", "3005"), "voices_test": ("1688", "2609", "3331")}
RESIDUALS = {"voices_valid": "valid", "voices_test": "test"}


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", default=str(REPO.parent / "shared" / "data" / "librispeech"))
    args = p.parse_args(argv)
    source, splits = Path(args.source), corpus_dir() / "splits"
    listed = []
    for subset in ("train-clean-100", "test-other"):
        for path in sorted((source / subset).rglob("*.flac"), key=lambda q: q.stem):
            wav = load_audio(path)
            listed.append({"subset": subset, "name": path.stem, "speaker": path.stem.split("-")[0],
                           "duration_s": f"{wav.size / SAMPLE_RATE:.3f}", "pcm_sha256": pcm16_sha256(wav)})
    _write(splits / "librispeech.csv", listed)
    heldout = json.loads((splits / "noise.json").read_text())["heldout"]
    rng = np.random.default_rng(SEED)
    for split, speakers in SPEAKERS.items():
        names = [r["name"] for r in listed if r["subset"] == "test-other" and r["speaker"] in speakers]
        residuals = [f"residual:{RESIDUALS[split]}/{r['name']}" for r in split_table(RESIDUALS[split])]
        rows = []
        for i, name in enumerate(names):
            speech = load_audio(next((source / "test-other").rglob(f"{name}.flac")))
            if i % 2 == 0:
                noise_name = residuals[int(rng.integers(len(residuals)))]
            else:
                noise_name = heldout[(i // 2) % len(heldout)]
            noise = load_noise(noise_name, corpus_dir())
            half = noise.size // 2
            start, stop = (0, noise.size) if noise_name.startswith("residual:") else \
                ((0, half) if split == "voices_valid" else (half, noise.size))
            snr = SNRS[i % len(SNRS)]
            recipe = make_voices_recipe(speech, noise[start:stop], snr, rng)
            side, mixture = mix_recipe(speech, noise[start:stop], recipe["offset"], recipe["noise_gain"],
                                       recipe["peak_scale"])
            rows.append({"name": name, "speaker": name.split("-")[0], "snr_db": f"{snr:.1f}",
                         "duration_s": f"{speech.size / SAMPLE_RATE:.3f}", "noise": noise_name,
                         "noise_start": start, "noise_stop": stop, "offset": recipe["offset"],
                         "noise_gain": repr(recipe["noise_gain"]), "peak_scale": repr(recipe["peak_scale"]),
                         "clean_sha256": pcm16_sha256(side), "noisy_sha256": pcm16_sha256(mixture)})
        _write(splits / f"{split}.csv", rows)
        print(f"{split}: {len(rows)} pairs, speakers {', '.join(speakers)}")
    prepare_librispeech(source=source)
    for split in SPEAKERS:
        print(f"built {voices_dir(split)}")
    print(f"listed {len(listed)} utterances in {splits / 'librispeech.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
