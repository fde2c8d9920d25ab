"""dcu.data: the shipped splits, SNR mixing, and the datasets built on them."""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from dcu.data import (SPLITS, PairedFolder, TrainingSet, corpus_dir, list_clean,
                      list_pairs, mix_at_snr, snr_db, speech_power, training_sources)
from dcu.scripts import build_corpus

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # the build's sources, where present

RNG = np.random.default_rng(1234)


def read_csv(split):
    with open(corpus_dir() / "splits" / f"{split}.csv") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- shipped corpus
def test_what_data_ships_stays_within_100_mb():
    """The repository's data/ (corpus, checkpoints, results) is at most 100 MB: what git tracks
    there, or every file when there is no git (e.g. an unpacked release)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "-z", "data"], cwd=root, capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        files = [root / name for name in listed.stdout.decode().split("\0") if name]
    else:
        files = [f for f in (root / "data").rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files if f.exists())
    assert len(files) > 1000 and total <= 100_000_000, f"data/ holds {total:,} bytes in {len(files)} files"


def test_splits_match_committed_lists_and_are_disjoint():
    names = {}
    for split in SPLITS:
        pairs = list_pairs(split)
        listed = sorted(r["name"] for r in read_csv(split))
        assert [c.stem for _, c in pairs] == listed
        assert [n.stem for n, _ in pairs] == listed
        assert all(n.parent.name == "noisy" and c.parent.name == "clean" for n, c in pairs)
        names[split] = set(listed)
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not names[a] & names[b], f"{a} and {b} share utterances"


def test_split_sizes_speakers_and_snrs():
    for split, lo, hi in (("test", 150, 200), ("valid", 30, 60), ("train", 400, 400), ("train_extra", 104, 104)):
        rows = read_csv(split)
        assert lo <= len(rows) <= hi
        strata = {(r["speaker"], float(r["snr_bin"])) for r in rows}
        assert strata == {(s, b) for s in ("p232", "p257") for b in (2.5, 7.5, 12.5, 17.5)}
        for r in rows:  # estimated SNRs sit near their bins
            assert abs(float(r["snr_db"]) - float(r["snr_bin"])) < 2.5
    unseen = read_csv("unseen")
    assert unseen and not any(r["name"].startswith(("p232", "p257")) for r in unseen)


def test_csv_durations_and_snr_match_the_audio():
    rows = read_csv("test")[:5]
    pairs = dict((c.stem, (n, c)) for n, c in list_pairs("test"))
    for r in rows:
        noisy, clean = (sf.read(p)[0] for p in pairs[r["name"]])
        assert clean.size / 16000 == pytest.approx(float(r["duration_s"]), abs=1e-3)
        assert snr_db(clean, noisy - clean, power="active") == pytest.approx(float(r["snr_db"]), abs=0.01)


def test_noise_declaration():
    decl = json.loads((corpus_dir() / "splits" / "noise.json").read_text())
    assert not set(decl["train"]) & set(decl["heldout"]) and decl["heldout"]
    shipped = {p.stem for p in (corpus_dir() / "noise").glob("*.flac")}
    assert shipped == set(decl["train"]) | set(decl["heldout"])
    assert {r["noise"] for r in read_csv("unseen")} <= set(decl["heldout"])


def test_train_split_ships_the_first_400_and_lists_the_other_104():
    rows, extra = read_csv("train"), read_csv("train_extra")
    assert len(rows) == 400 and all(r["first_400"] == "1" for r in rows)  # what the shipped models saw
    assert len(extra) == 104 and all(r["first_400"] == "0" for r in extra)  # issue 16's other pairs
    assert [c.stem for _, c in list_pairs("train")] == sorted(r["name"] for r in rows)  # nothing else shipped
    everything = [r["name"] for s in ("train", "train_extra", "valid", "test") for r in read_csv(s)]
    assert len(everything) == len(set(everything)) == 724  # all of VoiceBank+DEMAND's pairs, each in one list


@pytest.mark.skipif(not (SHARED / "voicebank_demand_test").is_dir(), reason="needs ../shared/data")
def test_the_extra_pairs_built_into_a_corpus_make_all_504(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for side in ("clean", "noisy"):
        (data / "corpus" / "train" / side).mkdir(parents=True)
        for f in (corpus_dir() / "corpus" / "train" / side).glob("*.flac"):
            (data / "corpus" / "train" / side / f.name).symlink_to(f)
    for d in ("splits", "noise"):
        (data / d).symlink_to(corpus_dir() / d)
    monkeypatch.setenv("DCU_DATA", str(data))
    with pytest.warns(UserWarning, match="104 of the 104 extra pairs"):
        assert len(training_sources("shipped", "all")["pairs"]) == 400
    build_corpus.add_extra_pairs(SHARED, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs = training_sources("shipped", "all")["pairs"]
    assert sorted(c.stem for _, c in pairs) == sorted(r["name"] for s in ("train", "train_extra") for r in read_csv(s))
    first = training_sources("shipped", "first_400")["pairs"]
    assert [c.stem for _, c in first] == [r["name"] for r in read_csv("train")]
    noisy, clean = next(p for p in pairs if p[1].stem == read_csv("train_extra")[0]["name"])
    r = read_csv("train_extra")[0]  # the real pair, as train_extra.csv describes it
    x, y = sf.read(noisy)[0], sf.read(clean)[0]
    assert snr_db(y, x - y, power="active") == pytest.approx(float(r["snr_db"]), abs=0.01)


def test_p239_split_by_utterance_and_mixed_with_heldout_noise():
    heldout = set(json.loads((corpus_dir() / "splits" / "noise.json").read_text())["heldout"])
    names = {s: [r["name"] for r in read_csv(s)] for s in ("p239_train", "p239_valid", "p239_test")}
    assert [len(v) for v in names.values()] == [403, 50, 50]
    assert len(set().union(*names.values())) == 503 and all(n.startswith("p239_") for v in names.values() for n in v)
    assert [p.stem for p in list_clean("p239_train")] == names["p239_train"]
    assert not (corpus_dir() / "corpus" / "p239_train" / "noisy").exists()
    for split in ("p239_valid", "p239_test"):  # their noisy side: rebuilt into the cache (test_mixing.py)
        assert not (corpus_dir() / "corpus" / split / "noisy").exists()
        rows = read_csv(split)
        assert {r["noise"] for r in rows} == heldout  # held-out noise only, never a training one
        assert {float(r["snr_bin"]) for r in rows} == {0.0, 5.0, 10.0, 15.0}
        pairs = {c.stem: (n, c) for n, c in list_pairs(split)}
        for r in rows[:4]:
            noisy, clean = (sf.read(p)[0] for p in pairs[r["name"]])
            assert noisy.size == clean.size and clean.size / 16000 == pytest.approx(float(r["duration_s"]), abs=1e-3)
            assert snr_db(clean, noisy - clean, power="active") == pytest.approx(float(r["snr_db"]), abs=0.01)
            assert abs(float(r["snr_db"]) - float(r["snr_bin"])) < 0.1
    with pytest.raises(FileNotFoundError, match="no clean audio"):
        list_clean("nowhere")


def test_corpus_dir_override(tmp_path, monkeypatch):
    make_pairs(tmp_path / "corpus" / "test", {"a": 1000, "b": 2000})
    monkeypatch.setenv("DCU_DATA", str(tmp_path))
    assert corpus_dir() == tmp_path
    assert [c.stem for _, c in list_pairs("test")] == ["a", "b"]
    assert [c.stem for _, c in list_pairs("test", root=tmp_path / "corpus")] == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="no 'valid' split"):
        list_pairs("valid")


# --------------------------------------------------------------------------- mixing
def speech_like(n=48000, seed=0):
    """Bursts of tone separated by silence, so active and whole power differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    envelope = (np.sin(2 * np.pi * 1.5 * t) > 0.3).astype(np.float32)
    return (0.3 * envelope * np.sin(2 * np.pi * 220 * t) + 1e-4 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("power", ["whole", "active"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 2.5, 7.5, 15.0, 30.0])
@pytest.mark.parametrize("noise_len", [7000, 48000, 100000])
def test_achieved_snr_equals_requested(power, snr, noise_len):
    clean = speech_like()
    noise = RNG.standard_normal(noise_len).astype(np.float32) * 0.1
    mixture, scaled = mix_at_snr(clean, noise, snr, power=power, rng=np.random.default_rng(5))
    assert mixture.shape == clean.shape == scaled.shape and mixture.dtype == np.float32
    np.testing.assert_allclose(mixture, clean + scaled, atol=1e-7)
    assert abs(snr_db(clean, scaled, power=power) - snr) < 0.01
    # independent reference computation of the definition
    p_noise = np.mean(scaled.astype(np.float64) ** 2)
    assert abs(10 * np.log10(speech_power(clean, power) / p_noise) - snr) < 0.01


def test_active_power_ignores_pauses():
    clean = speech_like()
    whole, active = speech_power(clean, "whole"), speech_power(clean, "active")
    assert active > 2 * whole  # more than half the signal is pause
    # a signal without pauses has the same power either way
    tone = 0.3 * np.sin(np.arange(32000) * 0.1)
    assert speech_power(tone, "active") == pytest.approx(speech_power(tone, "whole"), rel=1e-3)
    with pytest.raises(ValueError, match="power must be"):
        speech_power(tone, "peak")


def ramp_offset(scaled, noise_len):
    """Recover the offset of a scaled chunk of the ramp noise ``1000 + arange(noise_len)``."""
    ramp = 1000 + np.arange(noise_len, dtype=np.float64)
    x = scaled.astype(np.float64)
    drops = np.flatnonzero(np.diff(x) < 0)
    if drops.size:  # tiled: the ramp wraps around after noise_len - offset samples
        guess = noise_len - (drops[0] + 1)
    else:  # cropped: a straight line whose intercept/slope gives the offset
        slope, intercept = np.polyfit(np.arange(x.size), x, 1)
        guess = int(round(intercept / slope - 1000))

    def residual(o):
        chunk = ramp[(o + np.arange(x.size)) % noise_len]
        return np.abs(x - (x @ chunk / (chunk @ chunk)) * chunk).max() / np.abs(x).max()

    offset = min(range(max(0, guess - 3), guess + 4), key=residual)
    assert residual(offset) < 1e-5  # exactly that chunk of the noise, scaled
    return offset


def test_noise_is_cropped_or_tiled_at_random_offsets():
    clean = speech_like(10000)
    long_noise = 1000 + np.arange(30000, dtype=np.float64)  # each sample tells where it came from
    offsets = {ramp_offset(mix_at_snr(clean, long_noise, 5.0, rng=np.random.default_rng(s))[1], 30000)
               for s in range(5)}
    assert len(offsets) > 1 and all(0 <= o <= 20000 for o in offsets)  # cropped, never past the end
    short = 1000 + np.arange(3000, dtype=np.float64)
    offsets = {ramp_offset(mix_at_snr(clean, short, 5.0, rng=np.random.default_rng(s))[1], 3000)
               for s in range(5)}
    assert len(offsets) > 1 and all(0 <= o < 3000 for o in offsets)  # tiled from a random start
    assert ramp_offset(mix_at_snr(clean, short, 5.0)[1], 3000) == 0  # no rng: offset 0


def test_silent_speech_or_noise_is_refused():
    with pytest.raises(ValueError, match="speech is silent"):
        mix_at_snr(np.zeros(1000, np.float32), RNG.standard_normal(1000), 5.0)
    with pytest.raises(ValueError, match="noise chunk is silent"):
        mix_at_snr(speech_like(1000), np.zeros(1000), 5.0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        mix_at_snr(np.zeros((2, 10)), np.ones(10), 5.0)


# --------------------------------------------------------------------------- datasets
def make_pairs(folder, lengths, sr=16000):
    """Write clean tones and noisy = clean + noise, names -> lengths in samples."""
    for side in ("clean", "noisy"):
        (folder / side).mkdir(parents=True, exist_ok=True)
    for i, (name, n) in enumerate(lengths.items()):
        clean = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(n) / sr)
        noise = 0.05 * np.random.default_rng(i).standard_normal(n)
        sf.write(folder / "clean" / f"{name}.flac", clean, sr)
        sf.write(folder / "noisy" / f"{name}.flac", clean + noise, sr)
    return PairedFolder(folder / "clean", folder / "noisy").pairs


@pytest.fixture
def small_set(tmp_path):
    pairs = make_pairs(tmp_path, {"long": 40000, "mid": 33000, "short": 5000})
    noise = tmp_path / "hum.flac"
    sf.write(noise, 0.1 * np.sin(np.arange(9000) * 0.05), 16000)
    return pairs, [noise]


def test_training_items_are_fixed_length_crops(small_set):
    pairs, noises = small_set
    ds = TrainingSet(pairs, noises, segment=16000, items_per_file=2, remix_prob=0.0, progress=False)
    assert len(ds) == 6
    for i in range(len(ds)):
        noisy, clean = ds[i]
        assert noisy.shape == clean.shape == (16000,) and noisy.dtype == clean.dtype == torch.float32
    # remix_prob=0: the real pair, cropped at the same place on both sides
    noisy, clean = ds[0]
    full_clean, full_noisy = ds.clean[0], ds.noisy[0]
    start = int(np.flatnonzero(np.isclose(full_clean[: 40000 - 16000 + 1], clean[0].item(), atol=1e-7)
                               & np.isclose(full_noisy[: 40000 - 16000 + 1], noisy[0].item(), atol=1e-7))[0])
    np.testing.assert_array_equal(clean.numpy(), full_clean[start:start + 16000])
    np.testing.assert_array_equal(noisy.numpy(), full_noisy[start:start + 16000])
    with pytest.raises(IndexError):
        ds[6]


def test_short_files_are_zero_padded(small_set):
    pairs, noises = small_set
    ds = TrainingSet(pairs, noises, segment=16000, remix_prob=0.0, progress=False)
    k = ds.names.index("short")
    noisy, clean = ds[k]
    np.testing.assert_array_equal(clean[:5000].numpy(), ds.clean[k])
    np.testing.assert_array_equal(noisy[:5000].numpy(), ds.noisy[k])
    assert not clean[5000:].any() and not noisy[5000:].any()


def test_determinism_seed_epoch_index(small_set):
    pairs, noises = small_set
    a = TrainingSet(pairs, noises, segment=8000, seed=7, progress=False)
    b = TrainingSet(pairs, noises, segment=8000, seed=7, progress=False)
    items_a = [a[i] for i in range(len(a))]
    for i, (x, y) in enumerate(items_a):
        assert torch.equal(x, b[i][0]) and torch.equal(y, b[i][1])
        assert torch.equal(x, a[i][0])  # same item twice in one epoch
    a.set_epoch(1)
    cropped = [i for i in range(len(a)) if a.clean[i % 3].size > 8000]  # the short file is never cropped
    assert all(not torch.equal(items_a[i][1], a[i][1]) for i in cropped)  # a new epoch: new crops
    c = TrainingSet(pairs, noises, segment=8000, seed=8, progress=False)
    assert any(not torch.equal(items_a[i][0], c[i][0]) for i in range(len(c)))


def test_remixed_items_use_training_snrs(small_set):
    pairs, noises = small_set
    ds = TrainingSet(pairs, noises, segment=16000, remix_prob=1.0, progress=False)
    seen = set()
    for i in range(len(ds)):
        noisy, clean = (t.numpy() for t in ds[i])
        achieved = snr_db(clean, noisy - clean, power="active")
        nearest = min((0.0, 5.0, 10.0, 15.0), key=lambda s: abs(s - achieved))
        assert abs(achieved - nearest) < 0.01
        seen.add(nearest)
    assert len(seen) >= 2


def test_dataloader_workers_give_the_same_items(small_set):
    pairs, noises = small_set
    ds = TrainingSet(pairs, noises, segment=8000, seed=3, progress=False)
    ds.set_epoch(2)
    serial = torch.stack([ds[i][0] for i in range(len(ds))])
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    parallel = torch.cat([noisy for noisy, _ in loader])
    assert torch.equal(serial, parallel)


def test_training_set_on_shipped_pairs():
    ds = TrainingSet(list_pairs("train")[:8], [corpus_dir() / "noise" / "exercise_bike.flac"], progress=False)
    assert len(ds) == 32
    noisy, clean = ds[5]
    assert noisy.shape == (32000,) and torch.isfinite(noisy).all() and clean.abs().max() > 0.01


def test_paired_folder_lists_unmatched_names(tmp_path):
    make_pairs(tmp_path, {"a": 100, "b": 100, "c": 100})
    (tmp_path / "clean" / "b.flac").unlink()
    sf.write(tmp_path / "clean" / "z.wav", np.zeros(100), 16000)
    with pytest.raises(ValueError, match=r"only in clean: \['z'\]; only in noisy: \['b'\]"):
        PairedFolder(tmp_path / "clean", tmp_path / "noisy")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        PairedFolder(tmp_path / "clean", tmp_path / "missing")

