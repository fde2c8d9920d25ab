"""Build the shipped corpus in data/ from the real recordings in ../shared/data.

    python -m dcu.scripts.build_corpus [SOURCE] [--force] [--extra-train-pairs]   (from the repository root)

SOURCE defaults to ``../shared/data`` next to the repository. The build is deterministic (fixed
seed, sorted inputs): running it twice gives the same split lists and the same files. See
data/README.md for the protocol and the licences of every source. Nothing here downloads.

Listed but not shipped, to keep ``data/`` small: the 104 training pairs beyond the first 400
(``splits/train_extra.csv``; ``--extra-train-pairs`` copies them into ``corpus/train``: issue 16's
504-pair set) and the noisy side of p239_valid/p239_test, whose recipes (their csv files and
``splits/p239_restore.npz``) :mod:`dcu.corpus` rebuilds into the cache on first use.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from dcu.audio import load_audio, save_audio
from dcu.data import PairedFolder, mix_at_snr, snr_db
from dcu.mixing import make_recipe, pcm16_sha256
from dcu.stft import SAMPLE_RATE

REPO = Path(__file__).resolve().parents[2]  # dcu/scripts/ -> the repository root

SEED = 2019
TEST_SNRS = (2.5, 7.5, 12.5, 17.5)  # the VoiceBank+DEMAND test SNRs
TRAIN_NOISES = ["exercise_bike", "speechbrain_noise1", "speechbrain_noise2", "speechbrain_noise4", "speechbrain_noise5"]
HELDOUT_NOISES = ["doing_the_dishes", "speechbrain_noise3"]  # only in unseen/, demo/, p239 valid/test
DEMO_NOISE, DEMO_SNR = "doing_the_dishes", 5.0
PEAK = 0.99  # mixtures louder than this are scaled down, clean and noisy together
FIRST_TRAIN = 400  # the training pairs shipped (column first_400; the rest: splits/train_extra.csv)
P239_SPLIT = {"p239_valid": 50, "p239_test": 50}  # utterances; the rest of the 503 is p239_train
P239_SNRS = (0.0, 5.0, 10.0, 15.0)  # the paper's training SNRs, cycled over the sorted names
TRIM_MARGIN = 0.2  # seconds of room tone kept before the first and after the last active frame


def nearest_bin(snr: float) -> float:
    return min(TEST_SNRS, key=lambda b: abs(b - snr))


def allocate(strata: dict, n: int) -> dict:
    """Split ``n`` over strata in proportion to their sizes (largest remainder, ties by key)."""
    total = sum(len(v) for v in strata.values())
    quota = {k: n * len(v) / total for k, v in strata.items()}
    take = {k: int(q) for k, q in quota.items()}
    for k in sorted(strata, key=lambda k: (-(quota[k] - take[k]), k))[: n - sum(take.values())]:
        take[k] += 1
    return take


def stratified_pick(rows: list[dict], n: int, rng) -> tuple[list[dict], list[dict]]:
    """Pick ``n`` rows stratified over (speaker, SNR bin); return (picked, rest)."""
    strata: dict = {}
    for r in rows:
        strata.setdefault((r["speaker"], r["snr_bin"]), []).append(r)
    picked = []
    for key, k in allocate(strata, n).items():
        group = strata[key]
        picked += [group[i] for i in sorted(rng.choice(len(group), size=k, replace=False))]
    names = {r["name"] for r in picked}
    return sorted(picked, key=lambda r: r["name"]), [r for r in rows if r["name"] not in names]


def copy_pair(row: dict, split: str, out: Path) -> None:
    for side in ("clean", "noisy"):
        src, dst = row[side], out / "corpus" / split / side / f"{row['name']}.flac"
        dst.parent.mkdir(parents=True, exist_ok=True)
        info = sf.info(str(src))
        if (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", SAMPLE_RATE, 1):
            shutil.copyfile(src, dst)  # already in the shipped format: copy bits, no re-encoding
        else:
            save_audio(dst, load_audio(src), SAMPLE_RATE)


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def mix_and_save(clean: np.ndarray, noise: np.ndarray, snr: float, rng, clean_dst: Path, noisy_dst: Path) -> float:
    noisy, _ = mix_at_snr(clean, noise, snr, power="active", rng=rng)
    scale = min(1.0, PEAK / float(np.max(np.abs(noisy))))
    save_audio(clean_dst, clean * scale, SAMPLE_RATE)
    save_audio(noisy_dst, noisy * scale, SAMPLE_RATE)
    # what a reader measures from the 16-bit files, for the csv
    return snr_db(load_audio(clean_dst), load_audio(noisy_dst) - load_audio(clean_dst), power="active")


def speech_span(wav: np.ndarray, margin: float = TRIM_MARGIN, frame: int = 320) -> tuple[int, int]:
    """``(start, stop)`` samples of the speech in ``wav`` with ``margin`` seconds of room tone.

    The energy of 20 ms frames is smoothed over 100 ms (so a click or a lip smack in the room tone
    does not count as speech); active frames are louder than both 35 dB below the loudest one and
    12 dB above the room's floor (the 10th percentile). The raw VCTK files have a floor near
    -45 dBFS, so a threshold relative to the peak alone would keep their silences.
    """
    n = wav.size // frame
    power = np.mean(wav[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    energy = 10 * np.log10(np.convolve(power, np.ones(5) / 5, mode="same") + 1e-12)
    threshold = max(energy.max() - 35.0, np.percentile(energy, 10) + 12.0)
    active = np.flatnonzero(energy >= threshold)
    pad = int(round(margin * SAMPLE_RATE))
    return max(0, active[0] * frame - pad), min(wav.size, (active[-1] + 1) * frame + pad)


def save_npz(path: Path, arrays: dict) -> None:
    """``np.savez_compressed`` without its time stamps, so that a rebuild is byte-identical."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.save(buf, arrays[key], allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue(),
                       compress_type=zipfile.ZIP_DEFLATED)


def mix_recipe(clean: np.ndarray, noise: np.ndarray, start: int, stop: int, snr: float, rng, clean_dst: Path) -> dict:
    """Mix ``clean`` with ``noise[start:stop]`` as :func:`mix_and_save` does (the same draws from
    ``rng``) but save the clean side only: return the csv fields of the recipe that
    :func:`dcu.mixing.remix` rebuilds the noisy side from, and its ``restore`` array."""
    r = make_recipe(clean, noise[start:stop], snr, rng, PEAK)
    save_audio(clean_dst, clean * r["peak_scale"], SAMPLE_RATE)
    assert np.array_equal(load_audio(clean_dst), r["clean"]), f"{clean_dst}: not the clean side of the recipe"
    est = snr_db(r["clean"], r["mixture"] - r["clean"], power="active")  # what a reader measures
    return {"snr_db": f"{est:.2f}", "noise_start": start, "noise_stop": stop, "offset": r["offset"],
            "noise_gain": repr(r["gain"]), "peak_scale": repr(r["peak_scale"]),
            "noisy_sha256": pcm16_sha256(r["mixture"]), "restore": r["restore"]}


def add_extra_pairs(source: Path, out: Path) -> None:
    """Copy the pairs listed in ``out/splits/train_extra.csv`` into ``out/corpus/train``."""
    with open(out / "splits" / "train_extra.csv", newline="") as f:
        names = [r["name"] for r in csv.DictReader(f)]
    vb = PairedFolder(source / "voicebank_demand_test" / "clean", source / "voicebank_demand_test" / "noisy")
    pairs = {c.stem: (n, c) for n, c in vb.pairs}
    for name in names:
        copy_pair({"name": name, "noisy": pairs[name][0], "clean": pairs[name][1]}, "train", out)
    print(f"train: added the {len(names)} pairs of train_extra.csv to {out / 'corpus' / 'train'}")


def build_p239(source: Path, out: Path, noise_dir: Path) -> None:
    """VCTK p239: trimmed clean utterances split by utterance; valid/test mixed with held-out noise.

    Its own random generator, so the splits built before p239 was added stay byte-identical.
    The noisy side of valid/test is not written: its recipe is (see :func:`mix_recipe`).
    """
    rng = np.random.default_rng([SEED, 239])
    files = sorted((source / "vctk_p239").glob("p239_*.flac"))
    order = [files[i] for i in rng.permutation(len(files))]
    splits, at = {}, 0
    for split, n in P239_SPLIT.items():
        splits[split], at = sorted(order[at: at + n]), at + n
    splits = {"p239_train": sorted(order[at:]), **splits}
    # each held-out noise is cut in two halves: valid mixes with the first, test with the second
    noises = {n: load_audio(noise_dir / f"{n}.flac") for n in HELDOUT_NOISES}
    fields = ["name", "speaker", "duration_s", "trimmed_s"]
    restore = {}
    for split, paths in splits.items():
        rows = []
        for i, path in enumerate(paths):
            raw = load_audio(path)
            a, b = speech_span(raw)
            clean = raw[a:b]
            row = dict(name=path.stem, speaker="p239", duration_s=f"{clean.size / SAMPLE_RATE:.3f}",
                       trimmed_s=f"{(raw.size - clean.size) / SAMPLE_RATE:.3f}")
            dst = out / "corpus" / split / "clean" / path.name
            if split == "p239_train":
                save_audio(dst, clean, SAMPLE_RATE)
            else:
                name, snr = HELDOUT_NOISES[i % len(HELDOUT_NOISES)], P239_SNRS[i % len(P239_SNRS)]
                size = noises[name].size
                start, stop = (0, size // 2) if split == "p239_valid" else (size // 2, size)
                row.update(snr_bin=snr, noise=name, **mix_recipe(clean, noises[name], start, stop, snr, rng, dst))
                if row["restore"] is not None:
                    restore[path.stem] = row["restore"]
            rows.append(row)
        extra = [] if split == "p239_train" else ["snr_db", "snr_bin", "noise", "noise_start", "noise_stop",
                                                   "offset", "noise_gain", "peak_scale", "noisy_sha256"]
        write_csv(out / "splits" / f"{split}.csv", rows, fields + extra)
        minutes = sum(float(r["duration_s"]) for r in rows) / 60
        print(f"{split}: {len(rows)} utterances, {minutes:.1f} min after trimming")
    save_npz(out / "splits" / "p239_restore.npz", restore)
    print(f"p239_valid, p239_test: noisy side as recipes ({len(restore)} scaled down, restore in p239_restore.npz)")


def build(source: Path, out: Path, n_test: int, n_valid: int, n_train: int | None, extra_pairs: bool) -> None:
    rng = np.random.default_rng(SEED)
    vb = PairedFolder(source / "voicebank_demand_test" / "clean", source / "voicebank_demand_test" / "noisy")
    rows = []
    for noisy_path, clean_path in vb.pairs:
        clean, noisy = load_audio(clean_path), load_audio(noisy_path)
        est = snr_db(clean, noisy - clean, power="active")
        rows.append(dict(name=clean_path.stem, speaker=clean_path.stem.split("_")[0], snr_db=f"{est:.2f}",
                         snr_bin=nearest_bin(est), duration_s=f"{clean.size / SAMPLE_RATE:.3f}",
                         clean=clean_path, noisy=noisy_path))
    test, rest = stratified_pick(rows, n_test, rng)
    valid, rest = stratified_pick(rest, n_valid, rng)
    # The 400 pairs shipped are drawn as they always were (this also keeps the generator's state,
    # so unseen/ and demo/ stay byte-identical); issue 16 trained on them and the other 104.
    first = stratified_pick(rest, FIRST_TRAIN, rng)[0]
    first_names = {r["name"] for r in first}
    if n_train is None or n_train >= len(rest):
        train = rest
    elif n_train == FIRST_TRAIN:
        train = first
    else:
        train = stratified_pick(rest, n_train, np.random.default_rng([SEED, n_train]))[0]
    for r in rest:
        r["first_400"] = int(r["name"] in first_names)
    names = {r["name"] for r in train}
    extra = [r for r in rest if r["name"] not in names]  # listed in train_extra.csv, shipped on request
    fields = ["name", "speaker", "snr_db", "snr_bin", "duration_s"]
    for split, chosen in (("test", test), ("valid", valid), ("train", train), ("train_extra", extra)):
        for row in chosen if split != "train_extra" or extra_pairs else []:
            copy_pair(row, "train" if split == "train_extra" else split, out)
        write_csv(out / "splits" / f"{split}.csv", chosen, fields + (["first_400"] if split.startswith("train") else []))
        print(f"{split}: {len(chosen)} pairs" + (" (listed only)" if split == "train_extra" and not extra_pairs else ""))

    noise_dir = out / "noise"
    noise_dir.mkdir(parents=True, exist_ok=True)
    for name in TRAIN_NOISES + HELDOUT_NOISES:
        shutil.copyfile(source / "noise" / f"{name}.flac", noise_dir / f"{name}.flac")
    json.dump({"train": TRAIN_NOISES, "heldout": HELDOUT_NOISES,
               "note": "train noises may be used for on-the-fly remixing; heldout noises appear only "
                       "in corpus/unseen, corpus/demo and the p239_valid and p239_test mixtures"},
              open(out / "splits" / "noise.json", "w"), indent=2)

    vb_names = {r["name"] for r in rows}
    heldout = [load_audio(noise_dir / f"{n}.flac") for n in HELDOUT_NOISES]
    unseen = []
    speech = sorted(p for p in (source / "speech").glob("*.flac") if not p.stem.startswith("conversation"))
    for i, path in enumerate(speech):
        if path.stem in vb_names or path.stem.startswith(("p232", "p257")):
            print(f"skipping {path.name}: a VoiceBank test speaker, not unseen")
            continue
        k, snr = i % len(heldout), TEST_SNRS[i % len(TEST_SNRS)]
        d = out / "corpus" / "unseen"
        est = mix_and_save(load_audio(path), heldout[k], snr, rng, d / "clean" / path.name, d / "noisy" / path.name)
        speaker = path.stem.split("_")[3] if path.stem.startswith("cmu_arctic_us_") else "cmu_arctic"
        clean = load_audio(path)
        unseen.append(dict(name=path.stem, speaker=speaker, snr_db=f"{est:.2f}", snr_bin=snr,
                           duration_s=f"{clean.size / SAMPLE_RATE:.3f}", noise=HELDOUT_NOISES[k]))
    write_csv(out / "splits" / "unseen.csv", unseen, fields + ["noise"])
    print(f"unseen: {len(unseen)} pairs")

    demo = out / "corpus" / "demo"
    conv = load_audio(source / "speech" / "conversation_2spk.flac")
    est = mix_and_save(conv, heldout[HELDOUT_NOISES.index(DEMO_NOISE)], DEMO_SNR, rng,
                       demo / "conversation_clean.flac", demo / "conversation_noisy.flac")
    print(f"demo: conversation mixed with {DEMO_NOISE} at {est:.2f} dB")
    build_p239(source, out, noise_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "data")
    parser.add_argument("--test", type=int, default=180, help="test pairs (default 180)")
    parser.add_argument("--valid", type=int, default=40, help="validation pairs (default 40)")
    parser.add_argument("--train", type=int, default=FIRST_TRAIN,
                        help="training pairs shipped in corpus/train (default 400, column first_400; 0 = all "
                             "504); the others are listed in splits/train_extra.csv")
    parser.add_argument("--extra-train-pairs", action="store_true",
                        help="also copy the pairs of splits/train_extra.csv into corpus/train (issue 16's "
                             "504-pair training set); on an existing corpus without --force, only that")
    parser.add_argument("--force", action="store_true", help="delete and rebuild an existing corpus")
    args = parser.parse_args(argv)
    if not (args.source / "voicebank_demand_test").is_dir():
        parser.error(f"{args.source}: no voicebank_demand_test/ folder; pass the shared data folder")
    generated = [args.out / "corpus", args.out / "noise", args.out / "splits"]
    if any(p.exists() for p in generated):
        if args.extra_train_pairs and not args.force:
            if not (args.out / "splits" / "train_extra.csv").exists():
                parser.error(f"{args.out}: no splits/train_extra.csv to add; rebuild with --force")
            add_extra_pairs(args.source, args.out)
            return 0
        if not args.force:
            parser.error(f"{args.out}: corpus/, noise/ or splits/ already exist; pass --force to rebuild them")
        for p in generated:
            shutil.rmtree(p, ignore_errors=True)
    build(args.source, args.out, args.test, args.valid, args.train or None, args.extra_train_pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
