"""dcu.metrics: known answers, invariances, bad input, and a regression check against the
committed validation report (data/validation/noisy_724.json)."""

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from dcu import metrics
from dcu.audio import load_audio

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
REPORT = ROOT / "data" / "validation" / "noisy_724.json"
SR = 16000


def _pair(name="p257_012", split="valid"):
    return (load_audio(CORPUS / split / "clean" / f"{name}.flac").astype(np.float64),
            load_audio(CORPUS / split / "noisy" / f"{name}.flac").astype(np.float64))


@pytest.fixture(scope="module")
def speech():
    return _pair()[0]


def _white_at_snr(ref, snr_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(ref.size)
    noise -= noise.mean()
    noise *= np.sqrt(np.sum((ref - ref.mean()) ** 2) / np.sum(noise**2) / 10 ** (snr_db / 10))
    return ref + noise


def test_identical_signals(speech):
    assert metrics.pesq(speech, speech) == pytest.approx(4.644, abs=0.01)  # P.862.2 maximum
    assert metrics.stoi(speech, speech) == pytest.approx(1.0, abs=1e-6)
    assert metrics.estoi(speech, speech) == pytest.approx(1.0, abs=1e-6)
    assert metrics.si_sdr(speech, speech) > 100.0
    assert metrics.ssnr(speech, speech) == 35.0  # every frame at the upper clamp


def test_si_sdr_is_scale_invariant_and_matches_a_known_snr(speech):
    noisy = _white_at_snr(speech, 10.0)
    value = metrics.si_sdr(speech, noisy)
    assert value == pytest.approx(10.0, abs=0.2)
    for gain in (0.01, 0.5, 7.0, -3.0):
        assert metrics.si_sdr(speech, gain * noisy) == pytest.approx(value, abs=1e-9)
    assert metrics.si_sdr(speech, 0.3 * speech) > 100.0
    assert metrics.si_sdr(speech, np.zeros_like(speech)) < -100.0  # silence: finite, very low


def test_ssnr_of_stationary_signal_at_known_snr():
    # a stationary reference has the same SNR in every frame: segmental SNR = global SNR
    ref = np.random.default_rng(3).standard_normal(3 * SR)
    assert metrics.ssnr(ref, _white_at_snr(ref, 10.0, seed=4)) == pytest.approx(10.0, abs=0.3)
    assert metrics.ssnr(ref, _white_at_snr(ref, -30.0, seed=4)) == -10.0  # lower clamp


def test_more_noise_scores_lower(speech):
    high, low = _white_at_snr(speech, 20.0), _white_at_snr(speech, 0.0)
    a, b = metrics.compute_all(speech, high), metrics.compute_all(speech, low)
    for key in metrics.METRICS:
        assert a[key] > b[key], key


def test_compute_all_keys_and_torch_input(speech):
    noisy = _white_at_snr(speech, 5.0)
    out = metrics.compute_all(speech, noisy)
    assert tuple(out) == metrics.METRICS == (
        "pesq", "csig", "cbak", "covl", "ssnr", "stoi", "estoi", "si_sdr")
    as_torch = metrics.compute_all(torch.from_numpy(speech), torch.from_numpy(noisy))
    assert as_torch == pytest.approx(out, rel=1e-6)


def test_pesq_undefined_gives_nan_and_a_warning(speech):
    with pytest.warns(RuntimeWarning, match="no speech"):
        assert np.isnan(metrics.pesq(np.zeros(2 * SR), np.zeros(2 * SR)))
    short = speech[: SR // 10]
    with pytest.warns(RuntimeWarning, match="too short"):
        assert np.isnan(metrics.pesq(short, short))
    with pytest.warns(RuntimeWarning) as caught:
        out = metrics.compute_all(np.zeros(2 * SR), np.zeros(2 * SR))
    messages = " | ".join(str(w.message) for w in caught)
    assert "PESQ undefined" in messages and "SI-SDR undefined" in messages
    assert np.isnan(out["pesq"]) and np.isnan(out["csig"]) and out["ssnr"] == -10.0


def test_bad_input_is_refused_with_a_clear_message(speech):
    with pytest.raises(ValueError, match="differ in length"):
        metrics.compute_all(speech, speech[:-1])
    with pytest.raises(ValueError, match="1-D"):
        metrics.stoi(np.stack([speech, speech]), np.stack([speech, speech]))
    with pytest.raises(ValueError, match="NaN"):
        metrics.si_sdr(speech, np.full_like(speech, np.nan))
    with pytest.raises(ValueError, match="empty"):
        metrics.ssnr(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="16 kHz"):
        metrics.pesq(speech, speech, sample_rate=22050)
    with pytest.warns(RuntimeWarning, match="silent reference"):
        assert np.isnan(metrics.si_sdr(np.zeros(100), np.ones(100)))


def test_dnsmos_runs_offline_and_resamples(speech, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    noisy = _pair()[1]
    clean_scores = metrics.dnsmos(speech, SR)
    assert set(clean_scores) == {"sig", "bak", "ovrl", "p808"}
    assert all(1.0 <= v <= 5.0 for v in clean_scores.values())
    at_8k = metrics.dnsmos(noisy[::2].copy(), 8000)  # resampled to 16 kHz first
    assert at_8k["bak"] < clean_scores["bak"]  # the background noise is heard


# ---------------------------------------------------------------- regression vs the report
def _report_subset():
    """~30 report files that are also committed (train and valid splits), every 14th by name."""
    stored = {r["name"]: r for r in json.loads(REPORT.read_text())["files"]}
    shipped = {p.stem: split for split in ("train", "valid")
               for p in (CORPUS / split / "clean").glob("*.flac")}
    names = sorted(stored.keys() & shipped.keys())[::14]
    return [(name, shipped[name], stored[name]) for name in names]


def test_report_meets_the_papers_noisy_row():
    doc = json.loads(REPORT.read_text())
    paper = {"pesq": 1.97, "csig": 3.35, "cbak": 2.44, "covl": 2.63, "ssnr": 1.68}
    assert doc["n_files"] == len(doc["files"]) == 724
    for key, value in paper.items():
        mean = np.mean([r[key] for r in doc["files"]])
        assert abs(mean - value) <= (0.3 if key == "ssnr" else 0.05), key


def test_metrics_reproduce_the_committed_report_on_a_subset():
    subset = _report_subset()
    assert len(subset) >= 30
    ours = []
    for name, split, stored in subset:
        clean, noisy = _pair(name, split)
        row = metrics.compute_all(clean, noisy)
        for key in metrics.METRICS:
            assert row[key] == pytest.approx(stored[key], rel=1e-6, abs=1e-6), (name, key)
        ours.append(row)
    for key in metrics.METRICS:  # and hence the subset means
        assert np.mean([r[key] for r in ours]) == pytest.approx(
            np.mean([s[key] for _, _, s in subset]), abs=1e-6)
