"""Property-based fuzzing of what users feed dcu: random audio files and option values.

Random rates, lengths, channel counts and subtypes, written by libsndfile, then possibly damaged
(header bytes, body bytes, truncation), go through ``dcu enhance`` in this process with random
``--chunk-seconds`` values. Whatever happens: no exception escapes (no traceback), the inputs are
unchanged, and each input either has a correct output (same rate, channels and length, finite
samples) or exactly one error line naming it. ``dcu train``'s numeric options are fuzzed the same
way: a config or a one-line usage error. File names are fuzzed as the bytes the OS holds (not
UTF-8, newlines, escape codes): enhanced under their own name or refused in one printable line.
Checkpoints are fuzzed field by field (header, config, metadata, the training config they record,
weights): any change is refused in one line naming the file, an equal value loads.

Time is bounded for CI: a fixed number of examples (``DCU_FUZZ_EXAMPLES``, default 80; about 20 s on 2 loaded cores) of short
files, derandomized so a CI run is reproducible; set ``DCU_FUZZ_EXAMPLES=500`` to explore more.
"""

import contextlib
import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dcu.cli import main  # noqa: E402

EXAMPLES = int(os.environ.get("DCU_FUZZ_EXAMPLES", "80"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SUBTYPES = [("WAV", "PCM_16", ".wav"), ("WAV", "PCM_24", ".wav"), ("WAV", "FLOAT", ".wav"),
            ("WAV", "PCM_U8", ".wav"), ("WAV", "ULAW", ".wav"), ("FLAC", "PCM_16", ".flac"),
            ("FLAC", "PCM_24", ".flac"), ("OGG", "VORBIS", ".ogg"), ("AIFF", "PCM_16", ".aiff")]

audio_files = st.fixed_dictionaries({
    "rate": st.one_of(st.sampled_from([8000, 16000, 22050, 44100, 48000]),
                      st.integers(500, 400_000)),
    "frames": st.integers(0, 12_000),
    "channels": st.one_of(st.integers(1, 3), st.integers(30, 34)),
    "format": st.sampled_from(SUBTYPES),
    "signal": st.sampled_from(["noise", "silence", "loud", "nan"]),
    "damage": st.sampled_from(["none", "none", "header", "body", "truncate"]),
    "seed": st.integers(0, 2**16),
})
chunk_values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from(["nan", "-1", "0", "1", "2.5", "600", "1e308", "x"]))


def write_file(folder: Path, i: int, spec: dict):
    """Write one random file; returns its path, or None when libsndfile refuses the combination."""
    fmt, subtype, ext = spec["format"]
    rng = np.random.default_rng(spec["seed"])
    shape = (spec["frames"], min(spec["channels"], 8) if fmt == "FLAC" else spec["channels"])
    if spec["signal"] == "nan" and subtype != "FLOAT":
        return None  # only float files hold NaN (and libsndfile's u-law encoder crashes on it)
    data = {"noise": 0.1 * rng.standard_normal(shape), "silence": np.zeros(shape),
            "loud": np.clip(3 * rng.standard_normal(shape), -1, 1),
            "nan": np.where(rng.random(shape) < 0.01, np.nan, 0.1)}[spec["signal"]]
    path = folder / f"f{i}{ext}"
    rate = spec["rate"]
    if fmt == "OGG" and (rate not in (8000, 16000, 22050, 44100, 48000) or shape[1] > 2
                         or not shape[0]):
        return None  # libvorbis's encoder can crash the process on odd rates/channel counts
    try:
        sf.write(path, data.astype(np.float32), rate, format=fmt, subtype=subtype)
    except Exception:  # e.g. Vorbis at 400 kHz, FLAC above its rate limit
        return None
    raw = bytearray(path.read_bytes())
    if spec["damage"] == "header":
        for _ in range(3):
            raw[int(rng.integers(0, min(64, len(raw))))] = int(rng.integers(0, 256))
    elif spec["damage"] == "body" and len(raw) > 64:
        for _ in range(8):
            raw[int(rng.integers(64, len(raw)))] = int(rng.integers(0, 256))
    elif spec["damage"] == "truncate":
        raw = raw[: int(rng.integers(0, len(raw) + 1))]
    path.write_bytes(bytes(raw))
    return path


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: bad option values
            code = exc.code
        finally:  # dcu enhance flushes denormals process-wide; hypothesis draws need them
            torch.set_flush_denormal(False)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.timeout(600)
@FUZZ
@given(specs=st.lists(audio_files, min_size=1, max_size=3), chunk=chunk_values,
       to_folder=st.booleans())
def test_enhance_never_tracebacks_loses_or_writes_wrong_audio(tiny_ckpt, specs, chunk, to_folder):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        files = [write_file(tmp / "in", i, s) for i, s in enumerate(specs)]
        files = [f for f in files if f is not None]
        assume(files)
        before = {f: f.read_bytes() for f in files}
        argv = ["enhance", *map(str, files), "--model", str(tiny_ckpt)]
        if to_folder:
            argv += ["--out", str(tmp / "out")]
        if chunk is not None:
            argv.append(f"--chunk-seconds={chunk}")
        code, out, err = run(argv)
        assert "Traceback" not in err + out
        assert {f: f.read_bytes() for f in files} == before  # inputs untouched
        lines = [l for l in err.splitlines() if l.startswith("dcu enhance: error:")]
        if code == 2:  # a bad option: one usage line, nothing written
            assert "--chunk-seconds" in err and err.count("error:") == 1
            assert not (tmp / "out").exists()
            event("refused: bad --chunk-seconds")
            return
        for f in files:
            dst = (tmp / "out" / f.name) if to_folder else f.with_name(f"{f.stem}_enhanced{f.suffix}")
            dst = dst.with_suffix(".wav") if dst.suffix == ".aiff" else dst
            named = [l for l in lines if f"{f}:" in l]
            if dst.exists():  # enhanced: the input's rate, channels and length, finite samples
                assert not named, named
                info_in, info_out = sf.info(f), sf.info(dst)
                assert (info_out.samplerate, info_out.channels) == (info_in.samplerate,
                                                                    info_in.channels)
                y, _ = sf.read(dst, always_2d=True)
                x, _ = sf.read(f, always_2d=True)  # frames as really decoded
                assert y.shape == x.shape and np.isfinite(y).all()
                event("file enhanced")
            else:  # refused in exactly one line naming it
                assert len(named) == 1, (f, lines)
                event("file refused")
        assert code == (1 if lines else 0)


train_values = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                         st.sampled_from(["", "x", "1e9", "-0", "nan"]))


@FUZZ
@given(option=st.sampled_from(["--steps", "--batch-size", "--valid-every", "--lr",
                               "--segment-seconds", "--remix-prob", "--warmup-steps",
                               "--grad-clip", "--items-per-file", "--checkpoint-minutes"]),
       value=train_values)
def test_train_options_are_a_config_or_one_line(option, value):
    from dcu.training.config import LIMITS, config_from_args

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            cfg, _ = config_from_args([f"{option}={value}"])
        except SystemExit as exc:
            assert exc.code == 2
            assert err.getvalue().strip().splitlines()[-1].startswith(
                f"dcu train: error: argument {option}: ")
            return
    got = getattr(cfg, option[2:].replace("-", "_"))
    assert not isinstance(got, float) or math.isfinite(got)
    assert LIMITS[option[2:].replace("-", "_")][0](got)


# ------------------------------------------------------------------ file names as the OS gives them
names = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b)


@FUZZ
@given(raw=names, valid=st.booleans(), to_folder=st.booleans())
def test_any_file_name_is_enhanced_or_refused_in_one_printable_line(tiny_ckpt, raw, valid, to_folder):
    """Any bytes in a name (not UTF-8, a newline, escape codes): the file is enhanced under its
    own name, or refused in exactly one line that shows the name escaped."""
    from dcu.base.guard import shown

    with tempfile.TemporaryDirectory() as tmp:
        name = b"f" + raw + b".wav"
        src = os.path.join(os.fsencode(tmp), name)
        if valid:
            sf.write(src, 0.1 * np.random.default_rng(0).standard_normal(1600), 16000)
        else:
            with open(src, "wb") as f:
                f.write(b"RIFF, but not audio")
        out = os.path.join(os.fsencode(tmp), b"out")
        argv = ["enhance", os.fsdecode(src), "--model", str(tiny_ckpt)]
        code, stdout, err = run(argv + (["--out", os.fsdecode(out)] if to_folder else []))
        assert "Traceback" not in err + stdout
        dst = os.path.join(out, name) if to_folder else src[:-4] + b"_enhanced.wav"
        if valid:
            assert code == 0, err
            assert os.path.exists(dst) and sf.info(dst).frames == 1600
            assert stdout.count("\n") == 1 and shown(os.fsdecode(src)) in stdout
        else:
            assert code == 1 and not os.path.exists(dst)
            assert err.count("\n") == 1 and shown(os.fsdecode(src)) in err, err
        for line in (stdout + err).splitlines():
            assert line.isprintable() and line.encode("utf-8")  # no control bytes, no surrogates


# ------------------------------------------------------------------ checkpoints that say one thing more
plain_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                         st.text(max_size=6), st.lists(st.integers(0, 3), max_size=2))


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory):
    """A saved tiny model whose metadata records a training config, as ``dcu train`` writes."""
    import dcu

    model = dcu.DCUnet("tiny")
    path = tmp_path_factory.mktemp("fuzzed") / "run.pt"
    dcu.save(model, path, step=7, valid={"pesq": 2.5},
             train_config={"model": model.config_dict(), "steps": 7, "data": "shipped"})
    return path


@FUZZ
@given(where=st.sampled_from(["header", "config", "metadata", "train_config", "tensor"]),
       data=st.data())
def test_any_edit_of_a_checkpoint_is_refused_in_one_line(run_checkpoint, tmp_path_factory, where,
                                                         data):
    """Whatever a checkpoint says (header, config, metadata, recorded training config, weights),
    changing it makes loading fail in one line naming the file; only a change to an equal value
    (same type, same repr) loads."""
    import dcu
    from dcu.store.checkpoint import CheckpointError

    payload = torch.load(run_checkpoint, weights_only=True)
    if where == "tensor":
        weight = payload["state_dict"][data.draw(st.sampled_from(sorted(payload["state_dict"])))]
        if weight.is_floating_point() and weight.numel():
            weight.view(-1)[data.draw(st.integers(0, weight.numel() - 1))] += 0.5
        else:
            weight.add_(1)
        same = False
    else:
        target = {"header": payload, "config": payload["config"], "metadata": payload["metadata"],
                  "train_config": payload["metadata"]["train_config"]["model"]}[where]
        key = data.draw(st.one_of(st.sampled_from(sorted(target)), st.text(max_size=4)))
        if data.draw(st.booleans()):  # remove it
            same = key not in target
            target.pop(key, None)
        else:
            old, value = target.get(key, KeyError), data.draw(plain_values)
            same = type(old) is type(value) and repr(old) == repr(value)
            target[key] = value
    path = tmp_path_factory.mktemp("edit") / "edited.pt"
    torch.save(payload, path)
    if same:
        dcu.load(path)
        event("unchanged: loads")
        return
    with pytest.raises(CheckpointError) as err:
        dcu.load(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value), str(err.value)
    event(f"refused: {str(err.value)[len(str(path)) + 2:][:40]}")
