"""Objective speech-quality metrics used in the paper's table, plus reference-free DNSMOS.

- PESQ: wide-band MOS-LQO of ITU-T P.862.2 via the ``pesq`` package (mode ``'wb'``).  This is
  the figure in Choi et al. (2019), Table 2; the older ``pypesq`` raw score is not comparable.
- CSIG, CBAK, COVL: composite measures of Hu & Loizou (2008), see :mod:`dcu.composite`.
- SSNR: segmental SNR with the composite measures' settings (30 ms Hann frames, 7.5 ms hop,
  frames clamped to [-10, 35] dB).
- STOI (Taal et al., 2011) and extended STOI (Jensen & Taal, 2016) via ``pystoi``.
- SI-SDR: scale-invariant signal-to-distortion ratio (Le Roux et al., ICASSP 2019).
- DNSMOS P.835 (Reddy et al., ICASSP 2022) via ``speechmos``, whose wheel ships the ONNX models.

Every function takes 1-D float arrays (numpy or torch) of equal length.  Book:
book/08_evaluation.ipynb.
"""

from __future__ import annotations

import warnings

import numpy as np

from dcu import composite
from dcu.audio import as_numpy, resample
from dcu.stft import SAMPLE_RATE

__all__ = ["METRICS", "pesq", "stoi", "estoi", "si_sdr", "ssnr", "dnsmos", "compute_all"]

#: Keys of :func:`compute_all`, in the order the paper's table and ``dcu evaluate`` use.
METRICS = ("pesq", "csig", "cbak", "covl", "ssnr", "stoi", "estoi", "si_sdr")


def _as_signal(x, name: str) -> np.ndarray:
    """A 1-D float64 numpy copy of ``x`` (numpy array, list or torch tensor)."""
    x = np.asarray(as_numpy(x), dtype=np.float64)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mono signal (time,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return x


def _as_pair(ref, est) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _as_signal(ref, "reference"), _as_signal(est, "estimate")
    if ref.size != est.size:
        raise ValueError(
            f"reference and estimate differ in length ({ref.size} vs {est.size} samples); "
            "trim or pad them to the same length first"
        )
    return ref, est


def pesq(ref, est, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2 MOS-LQO, range about 1.04-4.64) of ``est`` against ``ref``.

    Args:
        ref, est: clean reference and degraded signal, (time,) float, same length.
        sample_rate: must be 16000 (wide-band PESQ is defined at 16 kHz only).

    Returns:
        The score as a float, or NaN with a ``RuntimeWarning`` naming the cause when PESQ is
        undefined for the input (no speech found in the reference, input shorter than about
        0.25 s, ...), so that a batch evaluation never stops half way.
    """
    import pesq as pesq_lib

    ref, est = _as_pair(ref, est)
    if sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"wide-band PESQ needs 16 kHz audio, got {sample_rate} Hz; resample first "
            "(dcu.audio can do it)"
        )
    if not (np.any(ref) or np.any(est)):  # the package would divide by a zero peak
        warnings.warn("PESQ undefined (no speech detected in the signals: both are silent); "
                      "returning NaN", RuntimeWarning, stacklevel=2)
        return float("nan")
    try:
        return float(pesq_lib.pesq(sample_rate, ref, est, "wb",
                                   on_error=pesq_lib.PesqError.RAISE_EXCEPTION))
    except pesq_lib.PesqError as err:
        cause = {
            "NoUtterancesError": "no speech detected in the signals",
            "BufferTooShortError": "signal too short (PESQ needs at least 0.25 s)",
        }.get(type(err).__name__, f"{type(err).__name__}: {err}")
        warnings.warn(f"PESQ undefined ({cause}); returning NaN", RuntimeWarning, stacklevel=2)
        return float("nan")


def _pystoi(ref, est, sample_rate: int, extended: bool) -> float:
    from pystoi import stoi as stoi_lib

    ref, est = _as_pair(ref, est)
    return float(stoi_lib(ref, est, sample_rate, extended=extended))


def stoi(ref, est, sample_rate: int = SAMPLE_RATE) -> float:
    """Short-time objective intelligibility (Taal et al., 2011), in [0, 1] (1 = identical)."""
    return _pystoi(ref, est, sample_rate, extended=False)


def estoi(ref, est, sample_rate: int = SAMPLE_RATE) -> float:
    """Extended STOI (Jensen & Taal, 2016), about [0, 1] (1 = identical)."""
    return _pystoi(ref, est, sample_rate, extended=True)


def si_sdr(ref, est) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., 2019), both signals made zero-mean.

    The reference is scaled by the least-squares gain onto the estimate; the result is
    unchanged when ``est`` is multiplied by any non-zero factor.  Identical signals give a
    very large value (limited only by float64 precision); a silent reference gives NaN with a
    ``RuntimeWarning``.
    """
    ref, est = _as_pair(ref, est)
    ref = ref - ref.mean()
    est = est - est.mean()
    energy = np.dot(ref, ref)
    if energy == 0.0:
        warnings.warn("SI-SDR undefined (silent reference); returning NaN", RuntimeWarning,
                      stacklevel=2)
        return float("nan")
    target = (np.dot(est, ref) / energy) * ref
    error = est - target
    t_energy, e_energy = np.dot(target, target), np.dot(error, error)
    # relative floors keep the value finite: +-10 log10(1 / eps) = +-156.5 dB at the extremes
    eps = np.finfo(np.float64).eps
    if t_energy == 0.0 and e_energy == 0.0:  # silent (or constant) estimate
        return float(10.0 * np.log10(eps))
    return float(10.0 * np.log10((t_energy + eps * e_energy) / (e_energy + eps * t_energy)))


def ssnr(ref, est, sample_rate: int = SAMPLE_RATE) -> float:
    """Segmental SNR in dB: mean over 30 ms Hann frames (7.5 ms hop) of the frame SNR
    clamped to [-10, 35] dB, as in the composite measures (Hu & Loizou, 2008)."""
    ref, est = _as_pair(ref, est)
    return float(np.mean(composite.compute_segsnr(ref, est, sample_rate)))


def dnsmos(wav, sample_rate: int) -> dict[str, float]:
    """Reference-free DNSMOS P.835 scores of one recording.

    Args:
        wav: (time,) float signal in [-1, 1] (louder input is scaled down with a warning).
        sample_rate: its rate in Hz; the signal is resampled to 16 kHz (polyphase) first.

    Returns:
        dict ``sig`` (speech quality), ``bak`` (background noise), ``ovrl`` (overall), each a
        MOS on 1-5, and ``p808`` (the P.808 overall MOS).  Runs offline: the ONNX models ship
        inside the ``speechmos`` wheel.
    """
    from speechmos import dnsmos as dnsmos_lib  # optional: only dcu enhance --dnsmos needs it

    x = _as_signal(wav, "signal")
    if sample_rate != SAMPLE_RATE:
        x = resample(x, sample_rate, SAMPLE_RATE)
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        warnings.warn(f"signal peaks at {peak:.2f} > 1; scaled to peak 1 for DNSMOS",
                      RuntimeWarning, stacklevel=2)
        x = x / peak
    out = dnsmos_lib.run(x.astype(np.float32), sr=SAMPLE_RATE)
    return {"sig": float(out["sig_mos"]), "bak": float(out["bak_mos"]),
            "ovrl": float(out["ovrl_mos"]), "p808": float(out["p808_mos"])}


def compute_all(ref, est, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """All eight table metrics of ``est`` against ``ref``: the keys of :data:`METRICS`.

    PESQ is computed once and reused by the composites; a NaN PESQ (see :func:`pesq`) makes
    CSIG, CBAK and COVL NaN too while the other metrics are still reported.
    """
    ref, est = _as_pair(ref, est)
    p = pesq(ref, est, sample_rate)
    comp = composite.compute_composite(ref, est, sample_rate, p)
    return {
        "pesq": p,
        "csig": comp["csig"],
        "cbak": comp["cbak"],
        "covl": comp["covl"],
        "ssnr": comp["segsnr"],
        "stoi": stoi(ref, est, sample_rate),
        "estoi": estoi(ref, est, sample_rate),
        "si_sdr": si_sdr(ref, est),
    }
