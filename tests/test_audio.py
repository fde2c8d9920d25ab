"""dcu.audio: reading any rate and channel count, atomic writing, clear errors on bad files."""

import numpy as np
import pytest
import soundfile as sf

from dcu.audio import (MAX_CHANNELS, MAX_SAMPLE_RATE, MAX_SAMPLES, MIN_SAMPLE_RATE, AudioError,
                       is_silent, load_audio, resample, save_audio)


def sine(freq, sr, seconds, amp=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wav, sr):
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(wav.size)))
    return np.argmax(spectrum) * sr / wav.size


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_load_resamples_any_rate_to_16k(tmp_path, sr):
    path = tmp_path / f"tone_{sr}.wav"
    sf.write(path, sine(440.0, sr, 1.5), sr, subtype="FLOAT")
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(wav.size - 1.5 * 16000) <= 1  # length scales with the rate ratio
    assert abs(peak_frequency(wav, 16000) - 440.0) < 1.0  # the tone keeps its frequency
    # amplitude is preserved away from the edges (a proper low-pass, not zero-stuffing)
    assert np.max(np.abs(wav[2000:-2000])) == pytest.approx(0.5, abs=0.01)


def test_resample_matches_exact_ratio_and_keeps_leading_axes():
    x = np.stack([sine(300.0, 44100, 1.0), sine(600.0, 44100, 1.0)])
    y = resample(x, 44100, 16000)
    assert y.shape == (2, 16000) and y.dtype == np.float32
    assert abs(peak_frequency(y[0], 16000) - 300.0) < 1.5
    assert abs(peak_frequency(y[1], 16000) - 600.0) < 1.5
    same = resample(x, 16000, 16000)
    assert np.array_equal(same, x) and same is not x
    with pytest.raises(ValueError):
        resample(x, 0, 16000)


def test_keep_file_rate_when_asked(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, sine(100.0, 22050, 0.5), 22050)
    assert load_audio(path, sample_rate=None).size == 11025


def test_stereo_downmix_and_per_channel(tmp_path):
    left, right = sine(200.0, 16000, 1.0), sine(500.0, 16000, 1.0, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono = load_audio(path)
    assert mono.shape == (16000,)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-6)
    both = load_audio(path, mono=False)
    assert both.shape == (2, 16000)
    np.testing.assert_allclose(both[0], left, atol=1e-6)
    np.testing.assert_allclose(both[1], right, atol=1e-6)
    assert load_audio(path, sample_rate=8000, mono=False).shape == (2, 8000)


def test_mono_file_as_channels_is_2d(tmp_path):
    path = tmp_path / "m.wav"
    sf.write(path, sine(200.0, 16000, 0.25), 16000)
    assert load_audio(path, mono=False).shape == (1, 4000)


def test_formats_round_trip(tmp_path):
    x = sine(440.0, 16000, 0.5)
    for ext in ("wav", "flac"):
        path = save_audio(tmp_path / f"x.{ext}", x, 16000)
        np.testing.assert_allclose(load_audio(path), x, atol=1.0 / 32768 + 1e-7)  # 16-bit PCM
    ogg = save_audio(tmp_path / "x.ogg", x, 16000)  # lossy: same length and tone
    y = load_audio(ogg)
    assert abs(y.size - x.size) < 1000 and abs(peak_frequency(y, 16000) - 440.0) < 2.0


def test_save_refuses_to_overwrite_and_is_atomic(tmp_path):
    path = tmp_path / "mine.wav"
    path.write_bytes(b"the user's own file")
    with pytest.raises(AudioError, match="already exists"):
        save_audio(path, np.zeros(100, np.float32), 16000)
    assert path.read_bytes() == b"the user's own file"
    save_audio(path, np.full(100, 0.25, np.float32), 16000, overwrite=True)
    np.testing.assert_allclose(load_audio(path), 0.25, atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.wav"]  # no temporary file left
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "nan.wav", np.array([0.0, np.nan], np.float32), 16000)
    assert not (tmp_path / "nan.wav").exists()
    with pytest.raises(AudioError, match="unknown audio format"):
        save_audio(tmp_path / "x.mp4", np.zeros(10, np.float32), 16000)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav")


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_corrupt_bytes(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, sine(440.0, 16000, 0.5), 16000)
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00" + bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    with pytest.raises(AudioError, match=r"corrupt\.wav: cannot be read as audio.*convert"):
        load_audio(bad)
    truncated_flac = tmp_path / "cut.flac"
    sf.write(tmp_path / "full.flac", sine(440.0, 16000, 0.5), 16000)
    truncated_flac.write_bytes((tmp_path / "full.flac").read_bytes()[:30])
    with pytest.raises(AudioError, match=r"cut\.flac"):
        load_audio(truncated_flac)


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my meeting notes, not a recording\n" * 20)
    with pytest.raises(AudioError, match=r"notes\.wav: cannot be read as audio"):
        load_audio(path)


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: contains no samples"):
        load_audio(path)


def test_nan_float_wav(tmp_path):
    path = tmp_path / "nan.wav"
    x = sine(440.0, 16000, 0.1)
    x[10] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN"):
        load_audio(path)
    x[10] = np.inf
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="infinite"):
        load_audio(path)


def test_errors_are_one_line_value_errors(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("hello")
    with pytest.raises(ValueError) as info:
        load_audio(path)
    assert "\n" not in str(info.value)


def test_silence_loads_and_is_detected(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    wav = load_audio(path)
    assert wav.size == 1600 and is_silent(wav)
    assert not is_silent(sine(100.0, 16000, 0.1, amp=0.01))
    assert is_silent(np.zeros(0))


# --------------------------------------------------------------------------- limits, permissions
def flac_claiming(path, samples):
    """A real 1000-sample FLAC whose STREAMINFO header claims ``samples`` samples."""
    sf.write(path, sine(440.0, 16000, 1000 / 16000), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    field = int.from_bytes(data[18:26], "big")
    data[18:26] = ((field >> 36 << 36) | samples).to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("samples", [2**34, 2**27])
def test_a_header_that_lies_costs_only_what_the_file_holds(tmp_path, samples):
    import tracemalloc

    path = flac_claiming(tmp_path / "claims.flac", samples)
    assert path.stat().st_size < 4096 and sf.info(path).frames == samples
    tracemalloc.start()
    try:
        if samples > MAX_SAMPLES:  # refused from the header alone
            with pytest.raises(AudioError, match=r"claims\.flac: .*over dcu's limit"):
                load_audio(path)
        else:  # within the limits: read in blocks, so memory follows the real samples
            with pytest.raises(AudioError, match=r"claims\.flac: cannot be read"):
                load_audio(path)  # libsndfile fails past the real end: a damaged file
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak


@pytest.mark.parametrize("offset,fmt,value,message", [
    (24, "<I", 2_000_000_001, "sample rate 2000000001 Hz is outside"),
    (24, "<I", 500, "sample rate 500 Hz is outside"),
    (22, "<H", 1000, "1000 channels; dcu reads 1 to 32"),
])
def test_absurd_rates_and_channel_counts_are_refused_from_the_header(tmp_path, offset, fmt,
                                                                       value, message):
    import struct

    good = tmp_path / "good.wav"
    sf.write(good, sine(440.0, 16000, 0.1), 16000, subtype="PCM_16")
    data = bytearray(good.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"bad\.wav: " + message):
        load_audio(bad)
    assert MIN_SAMPLE_RATE == 1000 and MAX_SAMPLE_RATE == 384000 and MAX_CHANNELS == 32
    with pytest.raises(ValueError, match="at most 384000 Hz"):  # a filter for 2 GHz would be gigabytes
        resample(np.zeros(100), 2_000_000_001, 16000)


def test_files_get_the_umask_permissions_and_stale_temporaries_go(tmp_path):
    import os
    import subprocess
    import sys

    old = os.umask(0o022)
    try:
        path = save_audio(tmp_path / "x.wav", sine(440.0, 16000, 0.1), 16000)
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        path.chmod(0o664)  # replacing a file keeps its mode, as a shell redirection would
        save_audio(path, sine(440.0, 16000, 0.1), 16000, overwrite=True)
        assert path.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)
    # a writer killed mid-save leaves its temporary file; the next save of that file removes it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".x.wav.dcu-{dead}-abc123.tmp"
    stale.write_bytes(b"half a file")
    alive = tmp_path / f".x.wav.dcu-{os.getppid()}-def456.tmp"  # a running writer's: kept
    alive.write_bytes(b"in progress")
    save_audio(path, sine(440.0, 16000, 0.1), 16000, overwrite=True)
    assert not stale.exists() and alive.exists()
