"""dcu.augment and the augmented dcu.data.TrainingSet: speed, gain, speech-free items, sources."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from dcu.augment import apply_gain, crop_with_speed, draw_speed, parse_range, speed_perturb
from dcu.data import PairedFolder, TrainingSet, corpus_dir, snr_db, training_sources

SNRS = (0.0, 5.0, 10.0, 15.0)


def peak_hz(x, sr=16000):
    """Frequency of the largest FFT bin, refined by parabolic interpolation."""
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1: k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / x.size


@pytest.mark.parametrize("factor", [0.9, 0.95, 1.1])
def test_speed_perturbation_scales_length_and_pitch(factor):
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    out = speed_perturb(tone, factor)
    assert out.dtype == np.float32 and out.size == int(np.ceil(16000 / factor))
    assert peak_hz(out[200:-200]) == pytest.approx(1000 * factor, abs=1.0)
    assert np.array_equal(speed_perturb(tone, 1.0), tone)


def test_crop_with_speed_covers_the_same_speech():
    wav = np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    plain, = crop_with_speed([wav], 100, 8000, 1.0)
    np.testing.assert_array_equal(plain, wav[100:8100])
    fast, = crop_with_speed([wav], 100, 8000, 1.1)
    np.testing.assert_allclose(fast, speed_perturb(wav[100:100 + 8800], 1.1)[:8000], atol=1e-6)
    end, = crop_with_speed([wav[:5000]], 0, 8000, 0.9)  # past the end: zeros, as for plain crops
    assert end.shape == (8000,) and not end[5600:].any()


def test_draw_speed_and_gain_draw_nothing_when_off():
    rng = np.random.default_rng(1)
    assert draw_speed(rng, None, 1.0) == 1.0 and draw_speed(rng, (0.9, 1.1), 0.0) == 1.0
    x = np.ones(4, np.float32)
    assert apply_gain(rng, None, x)[0] is x
    assert rng.random() == np.random.default_rng(1).random()  # the generator was not touched
    factors = {draw_speed(np.random.default_rng(s), (0.9, 1.1), 1.0) for s in range(50)}
    assert min(factors) >= 0.9 and max(factors) <= 1.1 and len(factors) > 10
    assert all(round(f, 2) == f for f in factors)


def test_gain_scales_both_sides_within_range_and_never_clips():
    rng = np.random.default_rng(2)
    noisy, clean = np.full(10, 0.1, np.float32), np.full(10, 0.05, np.float32)
    for _ in range(50):
        n, c = apply_gain(rng, (-10.0, 6.0), noisy, clean)
        g = 20 * np.log10(n[0] / 0.1)
        assert -10.0 - 1e-4 <= g <= 6.0 + 1e-4 and c[0] / n[0] == pytest.approx(0.5)
    loud = np.full(10, 0.9, np.float32)
    assert np.abs(apply_gain(rng, (6.0, 6.0), loud)[0]).max() == pytest.approx(0.99)


def test_parse_range_errors_name_the_option():
    assert parse_range("", "speed", (0.8, 1.25)) is None
    assert parse_range("0.9,1.1", "speed", (0.8, 1.25)) == (0.9, 1.1)
    for bad in ("1.1,0.9", "0.5,1.1", "fast", "0.9"):
        with pytest.raises(ValueError, match="--speed"):
            parse_range(bad, "speed", (0.8, 1.25))


# --------------------------------------------------------------------------- the training set
@pytest.fixture
def corpus(tmp_path):
    """Two pairs (tones + noise), two clean-only tones and a noise file."""
    for side in ("clean", "noisy"):
        (tmp_path / side).mkdir()
    rng = np.random.default_rng(0)
    for i, n in enumerate((40000, 36000)):
        clean = 0.3 * np.sin(2 * np.pi * (300 + 100 * i) * np.arange(n) / 16000)
        sf.write(tmp_path / "clean" / f"p{i}.flac", clean, 16000)
        sf.write(tmp_path / "noisy" / f"p{i}.flac", clean + 0.03 * rng.standard_normal(n), 16000)
    extra = []
    for i, n in enumerate((30000, 20000)):
        extra.append(tmp_path / f"s{i}.flac")
        sf.write(extra[-1], 0.2 * np.sin(2 * np.pi * 500 * np.arange(n) / 16000), 16000)
    sf.write(tmp_path / "hum.flac", 0.1 * np.sin(np.arange(9000) * 0.05), 16000)
    return PairedFolder(tmp_path / "clean", tmp_path / "noisy").pairs, extra, [tmp_path / "hum.flac"]


def make(corpus, **kw):
    pairs, extra, noises = corpus
    return TrainingSet(pairs, noises, segment=16000, items_per_file=4, progress=False,
                       extra_speech=extra, **kw)


AUG = dict(speed=(0.9, 1.1), speed_prob=0.5, gain_db=(-10.0, 6.0), speech_free_prob=0.2, seed=5)


def test_augmented_items_are_a_pure_function_of_seed_epoch_index(corpus):
    a, b = make(corpus, **AUG), make(corpus, **AUG)
    assert len(a) == 16 and a.names[2:] == ["s0", "s1"]
    b.set_epoch(3)
    b.set_epoch(0)
    for i in reversed(range(len(a))):  # any order, any instance
        x, y = a[i], b[i]
        assert x[0].shape == x[1].shape == (16000,) and x[0].dtype == torch.float32
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
    a.set_epoch(1)
    assert sum(not torch.equal(a[i][0], b[i][0]) for i in range(len(a))) >= 14


def test_extra_speech_is_always_mixed_at_the_training_snrs(corpus):
    ds = make(corpus, speed=(0.9, 1.1), speed_prob=1.0, gain_db=(-10.0, 6.0))
    seen = set()
    for i in range(len(ds)):
        if ds.names[i % 4].startswith("s"):
            noisy, clean = (t.numpy() for t in ds[i])
            achieved = snr_db(clean, noisy - clean, power="active")
            nearest = min(SNRS, key=lambda s: abs(s - achieved))
            assert abs(achieved - nearest) < 0.01
            seen.add(nearest)
    assert len(seen) >= 2


def test_speed_perturbed_items_change_pitch(corpus):
    pairs, _, noises = corpus
    ds = TrainingSet(pairs[:1], noises, segment=16000, remix_prob=0.0, speed=(1.1, 1.1), speed_prob=1.0,
                     progress=False)
    noisy, clean = ds[0]
    assert peak_hz(clean.numpy()[200:-200]) == pytest.approx(330.0, abs=1.0)  # the 300 Hz pair, x1.1
    assert peak_hz(noisy.numpy()[200:-200]) == pytest.approx(330.0, abs=1.0)  # both sides alike


def test_speech_free_items_have_silent_targets(corpus):
    ds = make(corpus, speech_free_prob=1.0)
    for i in range(len(ds)):
        noisy, clean = ds[i]
        assert not clean.any() and noisy.abs().max() > 1e-4
    ds = make(corpus, speech_free_prob=0.25)
    ds.items_per_file = 100
    share = np.mean([not ds[i][1].any() for i in range(len(ds))])
    assert 0.18 < share < 0.32  # 400 items: the share is near 0.25


# --------------------------------------------------------------------------- shipped sources
def read_names(split):
    with open(corpus_dir() / "splits" / f"{split}.csv") as f:
        return {r["name"] for r in csv.DictReader(f)}


def test_training_sources_hold_nothing_held_out():
    decl = json.loads((corpus_dir() / "splits" / "noise.json").read_text())
    with pytest.warns(UserWarning, match="--train-pairs all: 104 of the 104 extra pairs"):
        src = training_sources("shipped", "all", "p239")  # the extra pairs are not shipped: a warning says so
    assert len(src["pairs"]) == 400 and len(src["speech"]) == 403
    assert {p.stem for p in src["noises"]} == set(decl["train"])
    assert not {p.stem for p in src["noises"]} & set(decl["heldout"])
    used = {c.stem for _, c in src["pairs"]} | {p.stem for p in src["speech"]}
    for split in ("test", "valid", "unseen", "p239_valid", "p239_test"):
        assert not used & read_names(split), split
    assert training_sources()["pairs"] == src["pairs"]  # the default, first_400: what the shipped models saw
    pairs = src["pairs"][:3]
    ds = TrainingSet(pairs, src["noises"], progress=False)
    assert ds.noise_sources == {"residuals": [c.stem for _, c in pairs], "files": decl["train"]}
    with pytest.raises(ValueError, match="--train-pairs"):
        training_sources("shipped", "most")
