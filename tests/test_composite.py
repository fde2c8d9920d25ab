"""dcu.composite: LLR, WSS, segSNR and CSIG/CBAK/COVL (Hu & Loizou 2008).

The vectorised frame measures are checked against a direct frame-by-frame computation of the
published definitions (LPC by a Toeplitz solve instead of Levinson-Durbin, explicit Toeplitz
matrices, the peak search as a loop), plus invariants and known values.
"""

from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import solve_toeplitz, toeplitz

from dcu import composite
from dcu.audio import load_audio

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus" / "valid"
SR = 16000


@pytest.fixture(scope="module")
def pair():
    name = "p257_012.flac"
    return (load_audio(CORPUS / "clean" / name).astype(np.float64),
            load_audio(CORPUS / "noisy" / name).astype(np.float64))


def _frames_loop(x, sr):
    win = round(0.03 * sr)
    hop = win // 4
    w = 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, win + 1) / (win + 1)))
    return [x[s:s + win] * w for s in range(0, (len(x) - win) // hop * hop, hop)]


def _lpc(frame, order):
    r = np.array([frame[: len(frame) - k] @ frame[k:] for k in range(order + 1)])
    return r, np.concatenate([[1.0], -solve_toeplitz(r[:order], r[1:])])


def _reference_frames(ref, est, sr):
    """LLR, WSS, segSNR per frame, one frame at a time."""
    n_fft, half = 1024, 512
    centre = composite._BAND_CENTRE_HZ / (sr / 2) * half
    width = composite._BAND_WIDTH_HZ / (sr / 2) * half
    filt = np.exp(-11 * ((np.arange(half)[None] - np.floor(centre)[:, None]) / width[:, None]) ** 2
                  + np.log(70.0 / composite._BAND_WIDTH_HZ)[:, None])
    filt[filt <= np.exp(-30 / (2 * 2.303))] = 0.0  # below the -30 dB point
    llr, wss, seg = [], [], []
    for fr, fe in zip(_frames_loop(ref, sr), _frames_loop(est, sr)):
        r_ref, a_ref = _lpc(fr, 16)
        _, a_est = _lpc(fe, 16)
        big_r = toeplitz(r_ref)
        llr.append(np.log((a_est @ big_r @ a_est) / (a_ref @ big_r @ a_ref)))
        weights, slopes = [], []
        for f in (fr, fe):
            e = 10 * np.log10(np.maximum(filt @ (np.abs(np.fft.fft(f, n_fft)) ** 2)[:half], 1e-10))
            s = np.diff(e)
            peak = np.empty(24)
            for i in range(24):
                j = i
                if s[i] > 0:
                    while j < 24 and s[j] > 0:
                        j += 1
                    peak[i] = e[j - 1]
                else:
                    while j >= 0 and s[j] <= 0:
                        j -= 1
                    peak[i] = e[j + 1]
            weights.append(20 / (20 + e.max() - e[:24]) / (1 + peak - e[:24]))
            slopes.append(s)
        w = (weights[0] + weights[1]) / 2
        wss.append(np.sum(w * (slopes[0] - slopes[1]) ** 2) / np.sum(w))
        snr = 10 * np.log10(fr @ fr / ((fr - fe) @ (fr - fe) + 2.2e-16) + 2.2e-16)
        seg.append(min(max(snr, -10), 35))
    return np.array(llr), np.array(wss), np.array(seg)


def test_frame_measures_match_a_frame_by_frame_computation(pair):
    ref, est = pair
    llr, wss, seg = _reference_frames(ref, est, SR)
    assert composite.compute_llr(ref, est, SR) == pytest.approx(llr, abs=1e-7)
    assert composite.compute_wss(ref, est, SR) == pytest.approx(wss, abs=1e-8)
    assert composite.compute_segsnr(ref, est, SR) == pytest.approx(seg, abs=1e-9)


def test_frame_count_and_too_short_input():
    win, hop = 480, 120
    x = np.random.default_rng(0).standard_normal(5000)
    assert composite.frame_signal(x, SR).shape == ((5000 - win) // hop, win)
    with pytest.raises(ValueError, match="too short"):
        composite.frame_signal(x[: win + hop - 1], SR)


def test_identical_signals_give_zero_distance_and_maximal_scores(pair):
    ref, _ = pair
    assert np.allclose(composite.compute_llr(ref, ref, SR), 0.0, atol=1e-9)
    assert np.allclose(composite.compute_wss(ref, ref, SR), 0.0)
    assert np.all(composite.compute_segsnr(ref, ref, SR) == 35.0)
    out = composite.compute_composite(ref, ref, SR, pesq_score=4.644)
    assert (out["csig"], out["cbak"], out["covl"]) == (5.0, 5.0, 5.0)  # clipped from above


def test_llr_and_wss_ignore_the_estimates_gain(pair):
    ref, est = pair
    for f in (composite.compute_llr, composite.compute_wss):
        assert f(ref, 3.0 * est, SR) == pytest.approx(f(ref, est, SR), rel=1e-6, abs=1e-9)


def test_composites_are_the_published_regressions_and_clip_to_1_5(pair):
    ref, est = pair
    out = composite.compute_composite(ref, est, SR, pesq_score=2.0)
    llr, wss, seg = out["llr"], out["wss"], out["segsnr"]
    assert out["csig"] == pytest.approx(3.093 - 1.029 * llr + 0.603 * 2.0 - 0.009 * wss)
    assert out["cbak"] == pytest.approx(1.634 + 0.478 * 2.0 - 0.007 * wss + 0.063 * seg)
    assert out["covl"] == pytest.approx(1.594 + 0.805 * 2.0 - 0.512 * llr - 0.007 * wss)
    noise = np.random.default_rng(1).standard_normal(ref.size)
    bad = composite.compute_composite(ref, noise, SR, pesq_score=1.0)
    assert bad["csig"] == 1.0 and bad["covl"] == 1.0 and 1.0 <= bad["cbak"] < 2.0
    assert np.isnan(composite.compute_composite(ref, est, SR, float("nan"))["csig"])


def test_mean_of_best_keeps_the_lowest_95_percent_and_skips_nan():
    v = np.arange(1.0, 21.0)  # round(0.95 * 20) = 19 lowest -> 1..19
    assert composite.mean_of_best(v) == pytest.approx(10.0)
    assert composite.mean_of_best(np.append(v, np.nan)) == pytest.approx(10.0)
    assert composite.mean_of_best(np.array([2.5, 1.5])) == pytest.approx(2.0)  # 1.9 -> 2
    assert np.isnan(composite.mean_of_best(np.array([np.nan])))


def test_silent_reference_frames_do_not_poison_the_llr(pair):
    ref, est = pair
    ref = ref.copy()
    ref[:4000] = 0.0  # digital silence: LPC undefined there
    per_frame = composite.compute_llr(ref, est, SR)
    assert np.isnan(per_frame[0]) and np.isfinite(per_frame[-1])
    out = composite.compute_composite(ref, est, SR, pesq_score=2.0)
    assert all(np.isfinite(out[k]) for k in ("csig", "cbak", "covl"))


def test_unequal_lengths_are_refused(pair):
    ref, est = pair
    with pytest.raises(ValueError, match="equal length"):
        composite.compute_composite(ref, est[:-1], SR, 2.0)
