"""Composite quality measures CSIG, CBAK and COVL (Hu & Loizou, 2008).

Source: Y. Hu and P. C. Loizou, "Evaluation of objective quality measures for speech
enhancement", IEEE Trans. Audio, Speech, Lang. Process. 16(1):229-238, 2008, and the
frame-level measures described in P. C. Loizou, *Speech Enhancement: Theory and Practice*
(CRC Press, 2007), ch. 10.  The three composites are linear regressions of ITU-T P.862
PESQ and three frame-level distances between the clean reference and the processed signal:

- LLR, the log-likelihood ratio of LPC models (Quackenbush et al., 1988);
- WSS, Klatt's (1982) weighted spectral slope over 25 critical bands;
- segSNR, the segmental SNR with every frame clamped to [-10, 35] dB.

    CSIG = 3.093 - 1.029 LLR + 0.603 PESQ - 0.009 WSS
    CBAK = 1.634 + 0.478 PESQ - 0.007 WSS + 0.063 segSNR
    COVL = 1.594 + 0.805 PESQ - 0.512 LLR - 0.007 WSS      (each clipped to [1, 5])

Settings follow the published evaluation used for the VoiceBank+DEMAND tables: 30 ms frames
weighted by a Hann window w[n] = 0.5 (1 - cos(2 pi n / (N + 1))), n = 1..N, a hop of a quarter
frame, frames 0 .. floor((T - N) / hop) - 1 (the last complete frame is not used), LPC order
16 at 16 kHz (10 below 10 kHz), per-frame LLR not capped, and LLR and WSS averaged over the
95 % of frames with the smallest distance.  With the wide-band PESQ of P.862.2 these settings
reproduce the published "noisy input" row (see data/validation/README.md).

All functions take 1-D float arrays of equal length at ``sample_rate`` and compute every frame
at once with numpy.  Book: book/08_evaluation.ipynb.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "frame_signal",
    "compute_llr",
    "compute_wss",
    "compute_segsnr",
    "mean_of_best",
    "compute_composite",
]

FRAME_MS = 30.0
SEGSNR_RANGE_DB = (-10.0, 35.0)
KEEP_FRACTION = 0.95
WSS_K_MAX = 20.0  # Klatt (1982), global-maximum weight constant
WSS_K_LOCMAX = 1.0  # Klatt (1982), local-maximum weight constant

# Critical-band centre frequencies and bandwidths in Hz (25 bands, Klatt 1982).
_BAND_CENTRE_HZ = np.array([
    50.0, 120.0, 190.0, 260.0, 330.0, 400.0, 470.0, 540.0, 617.372, 703.378, 798.717,
    904.128, 1020.38, 1148.30, 1288.72, 1442.54, 1610.70, 1794.16, 1993.93, 2211.08,
    2446.71, 2701.97, 2978.04, 3276.17, 3597.63,
])
_BAND_WIDTH_HZ = np.array([
    70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 77.3724, 86.0056, 95.3398, 105.411, 116.256,
    127.914, 140.423, 153.823, 168.154, 183.457, 199.776, 217.153, 235.631, 255.255, 276.072,
    298.126, 321.465, 346.136,
])


def frame_signal(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut ``x`` (time,) into Hann-weighted 30 ms frames with a quarter-frame hop.

    Returns a float64 array (frames, frame_len).  Raises ValueError when ``x`` is shorter than
    two frames' worth of samples (one frame plus one hop).
    """
    win = int(round(FRAME_MS * sample_rate / 1000.0))
    hop = win // 4
    n_frames = (x.size - win) // hop
    if n_frames < 1:
        raise ValueError(
            f"signal of {x.size} samples is too short for the composite measures: "
            f"need at least {win + hop} samples ({(win + hop) / sample_rate * 1000:.1f} ms)"
        )
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 * (1.0 - np.cos(2.0 * np.pi * np.arange(1, win + 1) / (win + 1)))
    return np.asarray(x, dtype=np.float64)[idx] * window


def _autocorrelation(frames: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation lags 0..max_lag of each row, (frames, max_lag + 1) float64."""
    n = frames.shape[1]
    return np.stack([np.einsum("fi,fi->f", frames[:, : n - k], frames[:, k:])
                     for k in range(max_lag + 1)], axis=1)


def _levinson(r: np.ndarray) -> np.ndarray:
    """Levinson-Durbin on rows of lags r (frames, p + 1).

    Returns the LPC polynomials [1, -a_1, ..., -a_p], (frames, p + 1) float64.
    """
    n, p1 = r.shape
    a = np.zeros((n, p1 - 1))
    err = r[:, 0].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(p1 - 1):
            acc = r[:, i + 1] - np.einsum("fj,fj->f", a[:, :i], r[:, i:0:-1])
            k = acc / err
            prev = a[:, :i].copy()
            a[:, i] = k
            a[:, :i] = prev - k[:, None] * prev[:, ::-1]
            err = (1.0 - k * k) * err
    return np.concatenate([np.ones((n, 1)), -a], axis=1)


def _llr_frames(f_ref: np.ndarray, f_est: np.ndarray, order: int) -> np.ndarray:
    r_ref = _autocorrelation(f_ref, order)
    a_ref = _levinson(r_ref)
    a_est = _levinson(_autocorrelation(f_est, order))

    def quadratic(a):  # a R_ref a^T with R_ref Toeplitz: sum over lags of r_k * (a * a)_k
        q = r_ref[:, 0] * np.einsum("fi,fi->f", a, a)
        for k in range(1, order + 1):
            q += 2.0 * r_ref[:, k] * np.einsum("fi,fi->f", a[:, :-k], a[:, k:])
        return q

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(quadratic(a_est) / quadratic(a_ref))


def compute_llr(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame log-likelihood ratio, (frames,) float64, not capped.

    LLR = log(a_est R_ref a_est^T / a_ref R_ref a_ref^T), where a are the LPC polynomials of
    each frame (autocorrelation method, Levinson-Durbin) and R_ref is the Toeplitz
    autocorrelation matrix of the reference frame.  Frames where it is undefined (a digitally
    silent reference frame) are NaN.
    """
    order = 16 if sample_rate >= 10000 else 10
    return _llr_frames(frame_signal(ref, sample_rate), frame_signal(est, sample_rate), order)


def _critical_band_filters(sample_rate: int, n_half: int) -> np.ndarray:
    """Gaussian critical-band weights (25, n_half), zeroed below their -30 dB point."""
    scale = n_half / (sample_rate / 2.0)
    centre = np.floor(_BAND_CENTRE_HZ * scale)[:, None]
    width = (_BAND_WIDTH_HZ * scale)[:, None]
    norm = np.log(_BAND_WIDTH_HZ[0]) - np.log(_BAND_WIDTH_HZ)[:, None]
    bins = np.arange(n_half)[None, :]
    filt = np.exp(-11.0 * ((bins - centre) / width) ** 2 + norm)
    return filt * (filt > np.exp(-30.0 / (2.0 * 2.303)))


def _band_energies_db(frames: np.ndarray, sample_rate: int) -> np.ndarray:
    """Critical-band energies in dB, (frames, 25), floored at -100 dB."""
    win = frames.shape[1]
    n_fft = 1 << int(np.ceil(np.log2(2 * win)))
    spec = np.fft.rfft(frames, n_fft, axis=1)[:, : n_fft // 2]
    power = spec.real**2 + spec.imag**2
    energy = power @ _critical_band_filters(sample_rate, n_fft // 2).T
    return 10.0 * np.log10(np.maximum(energy, 1e-10))


def _nearest_peaks(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Level of the spectral peak nearest each band, (frames, 24), Klatt's search rule.

    A rising band searches upwards through the run of rising slopes and, as in the
    reference implementation, takes the level one band below the end of the run; a falling
    or flat band searches downwards to the band just above the last rising slope.
    """
    n_slopes = slope.shape[1]
    band = np.broadcast_to(np.arange(n_slopes), slope.shape)
    # first index >= i whose slope is not rising (n_slopes when none)
    stop_up = np.where(slope <= 0, band, n_slopes)
    stop_up = np.minimum.accumulate(stop_up[:, ::-1], axis=1)[:, ::-1]
    # last index <= i whose slope is rising (-1 when none)
    stop_down = np.maximum.accumulate(np.where(slope > 0, band, -1), axis=1)
    peak_idx = np.where(slope > 0, stop_up - 1, stop_down + 1)
    return np.take_along_axis(energy, peak_idx, axis=1)


def compute_wss(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame weighted spectral slope distance (Klatt 1982), (frames,) float64.

    Slopes of the 25 critical-band log energies are compared band by band, each difference
    weighted by the mean of the two signals' weights
    W = K_max / (K_max + dB_max - E) * K_locmax / (K_locmax + E_peak - E), and the weighted
    sum is divided by the sum of the weights.
    """
    return _wss_frames(frame_signal(ref, sample_rate), frame_signal(est, sample_rate),
                       sample_rate)


def _wss_frames(f_ref: np.ndarray, f_est: np.ndarray, sample_rate: int) -> np.ndarray:
    e_ref = _band_energies_db(f_ref, sample_rate)
    e_est = _band_energies_db(f_est, sample_rate)
    weights, slopes = [], []
    for e in (e_ref, e_est):
        slope = np.diff(e, axis=1)
        peak = _nearest_peaks(e, slope)
        level = e[:, :-1]
        w_max = WSS_K_MAX / (WSS_K_MAX + e.max(axis=1, keepdims=True) - level)
        w_loc = WSS_K_LOCMAX / (WSS_K_LOCMAX + peak - level)
        weights.append(w_max * w_loc)
        slopes.append(slope)
    w = 0.5 * (weights[0] + weights[1])
    return np.sum(w * (slopes[0] - slopes[1]) ** 2, axis=1) / np.sum(w, axis=1)


def compute_segsnr(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame SNR in dB of the Hann-weighted frames, clamped to [-10, 35], (frames,)."""
    return _segsnr_frames(frame_signal(ref, sample_rate), frame_signal(est, sample_rate))


def _segsnr_frames(f_ref: np.ndarray, f_est: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float64).eps
    signal = np.einsum("fi,fi->f", f_ref, f_ref)
    noise = np.einsum("fi,fi->f", f_ref - f_est, f_ref - f_est)
    snr = 10.0 * np.log10(signal / (noise + eps) + eps)
    return np.clip(snr, *SEGSNR_RANGE_DB)


def mean_of_best(values: np.ndarray, keep: float = KEEP_FRACTION) -> float:
    """Mean of the ``round(keep * n)`` smallest finite values (NaN if none is finite)."""
    v = np.sort(values[np.isfinite(values)])
    n = int(np.floor(keep * v.size + 0.5))  # MATLAB-style round half up
    return float(np.mean(v[:n])) if n > 0 else float("nan")


def compute_composite(
    ref: np.ndarray, est: np.ndarray, sample_rate: int, pesq_score: float
) -> dict[str, float]:
    """CSIG, CBAK, COVL from a PESQ score and the frame-level distances.

    Args:
        ref, est: clean reference and processed signal, (time,) float, same length.
        sample_rate: their rate in Hz (16000 for the published settings).
        pesq_score: PESQ of ``est`` against ``ref`` (wide-band MOS-LQO, see
            :func:`dcu.metrics.pesq`); NaN gives NaN composites.

    Returns:
        dict with ``csig``, ``cbak``, ``covl`` (each clipped to [1, 5]) and the ingredients
        ``llr`` and ``wss`` (means of the best 95 % of frames) and ``segsnr`` (mean over all
        frames, dB).
    """
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    if ref.shape != est.shape or ref.ndim != 1:
        raise ValueError(f"need two 1-D signals of equal length, got {ref.shape} and {est.shape}")
    f_ref, f_est = frame_signal(ref, sample_rate), frame_signal(est, sample_rate)
    llr = mean_of_best(_llr_frames(f_ref, f_est, 16 if sample_rate >= 10000 else 10))
    wss = mean_of_best(_wss_frames(f_ref, f_est, sample_rate))
    segsnr = float(np.mean(_segsnr_frames(f_ref, f_est)))
    p = float(pesq_score)
    csig = 3.093 - 1.029 * llr + 0.603 * p - 0.009 * wss
    cbak = 1.634 + 0.478 * p - 0.007 * wss + 0.063 * segsnr
    covl = 1.594 + 0.805 * p - 0.512 * llr - 0.007 * wss
    clip = lambda v: float(np.clip(v, 1.0, 5.0))  # noqa: E731 - NaN passes through
    return {"csig": clip(csig), "cbak": clip(cbak), "covl": clip(covl),
            "llr": llr, "wss": wss, "segsnr": segsnr}
