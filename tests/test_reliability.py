"""What dcu promises on bad input, interruption and concurrency (README, "What dcu promises").

Each test drives the public command line in a real process (``python -m dcu ...``, or
``dcu.cli.main`` behind a small stand-in for a slow disk or a busy machine, which patches only
third-party or standard-library calls), and checks the promise itself: one line on standard
error naming the file, the documented exit status, no traceback, nothing lost or half-written,
never a hang (every process runs under a timeout). The classes, one section each:

1. a checkpoint that lies (edited config or metadata, a config that disagrees with itself);
2. an empty checkpoint, /dev/null; 3. special files (FIFO, socket, device) anywhere dcu reads;
4. file names that are not UTF-8; 5. file names with a newline;
6. SIGTERM and SIGHUP mid-write; 7. two ``dcu enhance`` writing one output;
8. two ``dcu train`` in one ``--out``; 9. ``--resume`` on changed training data;
10. two ablation workers adding to one grid file; 11. Ctrl-C during ``dcu evaluate --jobs 2``;
and the exit-status table every command follows.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import dcu
from dcu.store.checkpoint import CheckpointError, read_checkpoint, resolve, with_checksum

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
LATIN1 = b"caf\xe9"  # "café" as Latin-1: not UTF-8, so Python holds it as a surrogate escape
TIMEOUT = 120


def dcu_run(*args, timeout=TIMEOUT, cwd=None):
    """``python -m dcu ARGS`` (str or bytes arguments) -> (exit status, stdout, stderr as text)."""
    argv = [sys.executable, "-m", "dcu", *[os.fsencode(a) if isinstance(a, Path) else a for a in args]]
    p = subprocess.run(argv, capture_output=True, timeout=timeout, env=ENV, cwd=cwd)
    return p.returncode, text(p.stdout), text(p.stderr)


MANY = r"""
import contextlib, io, json, sys
from dcu.cli import main
results = []
for argv in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: bad options
            code = exc.code
    results.append([code, out.getvalue(), err.getvalue()])
sys.stdout.write(json.dumps(results))
"""


def dcu_calls(*calls, timeout=TIMEOUT):
    """Several ``dcu`` command lines run by ``dcu.cli.main`` in one fresh process (under a
    timeout, so a blocking open fails the test instead of hanging it): [(status, out, err)]."""
    argvs = [[os.fsdecode(a) for a in call] for call in calls]
    p = subprocess.run([sys.executable, "-c", MANY], input=json.dumps(argvs), capture_output=True,
                       text=True, timeout=timeout, env=ENV)
    assert p.returncode == 0, p.stderr[-3000:]
    return [tuple(r) for r in json.loads(p.stdout)]


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def lines(err: str) -> list[str]:
    """stderr's lines, without progress-bar redraws."""
    return [l for l in re.split(r"[\r\n]", err) if l.strip() and not re.match(r"^\w+:\s+\d+%\|", l)]


def one_error_line(err: str, name: str) -> str:
    """The single line stderr holds; it names ``name`` and carries no traceback."""
    assert "Traceback" not in err, err
    got = lines(err)
    assert len(got) == 1, got
    assert name in got[0], (name, got[0])
    return got[0]


def write_wav(path, seconds=1.0, seed=0, rate=16000):
    rng = np.random.default_rng(seed)
    sf.write(os.fsencode(path), 0.1 * rng.standard_normal(int(seconds * rate)).astype(np.float32), rate)
    return path


@pytest.fixture
def ckpt(tmp_path, tiny_ckpt):
    """A private copy of the tiny checkpoint."""
    return Path(shutil.copy(tiny_ckpt, tmp_path / "model.pt"))


def edited(path, edit):
    """Write ``path`` back with ``edit(payload)`` applied, as a user's script would."""
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


# ------------------------------------------------------------------ 1. checkpoints that lie
def test_an_edited_config_is_refused_in_one_line_naming_the_file(ckpt, tmp_path):
    edited(ckpt, lambda p: p["config"].update(mask="UBD"))  # tensors untouched
    for args in (["checkpoint", "info", ckpt],
                 ["enhance", write_wav(tmp_path / "a.wav"), "--model", ckpt, "--out", tmp_path / "o"]):
        code, out, err = dcu_run(*args)
        assert code == 1
        assert "checksum" in one_error_line(err, str(ckpt))
    assert not (tmp_path / "o" / "a.wav").exists()
    with pytest.raises(CheckpointError, match=re.escape(str(ckpt)) + ": .*edited"):
        dcu.load(ckpt)


@pytest.mark.parametrize("edit", [
    lambda p: p["metadata"].update(step=123456),
    lambda p: p["metadata"].update(valid={"pesq": 4.5}),
    lambda p: p["metadata"].pop("num_parameters"),
    lambda p: p["metadata"].update(note="added later"),
    lambda p: p.update(extra={"x": 1}),
    lambda p: p["config"].update(leaky_slope=0.2),
], ids=["step", "scores", "removed-field", "added-field", "added-section", "slope"])
def test_any_edit_of_config_or_metadata_is_refused(ckpt, edit):
    edited(ckpt, edit)
    with pytest.raises(CheckpointError, match=re.escape(str(ckpt)) + ": .*checksum") as err:
        read_checkpoint(ckpt)
    assert "\n" not in str(err.value)


def test_a_training_checkpoints_state_is_covered_too(tmp_path):
    payload = read_checkpoint(dcu.save(dcu.DCUnet("tiny"), tmp_path / "m.pt"))
    state = {"step": 3, "history": [{"step": 3, "valid": {"pesq": 1.5}}]}
    path = tmp_path / "run.pt"
    torch.save(with_checksum({**payload, "train_state": state}), path)
    read_checkpoint(path)  # consistent
    edited(path, lambda p: p["train_state"]["history"][0]["valid"].update(pesq=3.5))
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ": .*checksum"):
        read_checkpoint(path)


def test_a_config_that_disagrees_with_its_training_config_is_refused(tmp_path):
    payload = read_checkpoint(dcu.save(dcu.DCUnet("tiny"), tmp_path / "m.pt"))
    payload["metadata"]["train_config"] = {"model": {**payload["config"], "mask": "BDT"}, "steps": 5}
    payload["config"]["mask"] = "UBD"
    path = tmp_path / "restamped.pt"  # edited with the checksum recomputed: still refused
    torch.save(with_checksum(payload), path)
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ": its config says mask='UBD' "
                       "but the training config it records says mask='BDT'"):
        dcu.load(path)
    code, _, err = dcu_run("checkpoint", "info", path)
    assert code == 1 and "training config" in one_error_line(err, str(path))


@pytest.mark.parametrize("name", ["dcunet10", "dcunet20"])
def test_shipped_format_1_files_load_and_are_checked_by_the_old_rule_and_for_consistency(tmp_path, name):
    shipped = resolve(name)
    assert torch.load(shipped, weights_only=True)["format_version"] == 1  # as shipped
    assert dcu.load(name).config.mask == "BDT"
    flat = edited(Path(shutil.copy(shipped, tmp_path / "edited.pt")),
                  lambda p: p["config"].update(mask="UBD"))
    with pytest.raises(CheckpointError, match="training config it records says mask='BDT'"):
        dcu.load(flat)
    flipped = edited(Path(shutil.copy(shipped, tmp_path / "flipped.pt")),
                     lambda p: p["state_dict"]["encoders.0.conv.weight_re"].mul_(-1))
    with pytest.raises(CheckpointError, match="tensors do not match the checksum"):
        dcu.load(flipped)


# ------------------------------------------------------------------ 2. empty checkpoints
def test_an_empty_checkpoint_or_dev_null_is_one_line_naming_it(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    wav = write_wav(tmp_path / "a.wav")
    calls = []
    for m in (empty, Path(os.devnull)):
        calls += [(["checkpoint", "info", m], m), (["checkpoint", "strip", m, tmp_path / "s.pt"], m),
                  (["enhance", wav, "--model", m, "--out", tmp_path / "o"], m),
                  (["train", "--init", m, "--arch", "tiny", "--out", tmp_path / "run"], m)]
    for (args, named), (code, out, err) in zip(calls, dcu_calls(*(c for c, _ in calls))):
        assert code == 1, (args, err)
        line = one_error_line(err, str(named))
        assert "IndexError" not in line and re.search("empty|device", line), line
    for path in (empty, os.devnull):
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            dcu.load(path)
    assert not (tmp_path / "s.pt").exists() and not (tmp_path / "o" / "a.wav").exists()


# ------------------------------------------------------------------ 3. special files
@pytest.fixture
def specials(tmp_path):
    """A FIFO, a listening Unix socket and a character device, each with an audio and a
    checkpoint name."""
    made = {}
    for ext in (".pt", ".wav"):
        fifo = tmp_path / f"fifo{ext}"
        os.mkfifo(fifo)
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(tmp_path / f"sock{ext}"))
        made[f"fifo{ext}"], made[f"sock{ext}"] = fifo, tmp_path / f"sock{ext}"
        (tmp_path / f"zero{ext}").symlink_to("/dev/zero")  # a device behind an ordinary name
        made[f"zero{ext}"] = tmp_path / f"zero{ext}"
    yield made


def test_special_files_are_refused_before_any_read_and_never_hang(tmp_path, specials, tiny_ckpt):
    for side, seed in (("c", 0), ("n", 1)):
        (tmp_path / side).mkdir()
        write_wav(tmp_path / side / "x.wav", seed=seed)
    calls = []
    for kind in ("fifo", "sock", "zero"):
        model, wav = specials[f"{kind}.pt"], specials[f"{kind}.wav"]
        calls += [(["checkpoint", "info", model], model),
                  (["enhance", write_wav(tmp_path / "a.wav"), "--model", model], model),
                  (["enhance", wav, "--model", tiny_ckpt, "--out", tmp_path / "o"], wav),
                  (["evaluate", "--clean", tmp_path / "c", "--noisy", tmp_path / "n", "--model",
                    model], model),
                  (["train", "--init", model, "--arch", "tiny", "--out", tmp_path / "run"], model),
                  (["plot-log", model], model)]
    for (args, named), (code, out, err) in zip(calls, dcu_calls(*(c for c, _ in calls), timeout=90)):
        assert code == 1, (args, err)
        line = one_error_line(err, str(named))
        assert re.search("pipe|FIFO|socket|device", line), line


LIBRARY_READS = r"""
import sys
import dcu
from dcu.audio import AudioError, load_audio
from dcu.store.checkpoint import CheckpointError
for wav, model in zip(sys.argv[1::2], sys.argv[2::2]):
    for read, path, error in ((load_audio, wav, AudioError), (dcu.load, model, CheckpointError)):
        try:
            read(path)
        except error as exc:
            print(exc)
"""


def test_special_files_are_refused_by_the_library_too(specials):
    kinds = ("fifo", "sock", "zero")
    paths = [specials[f"{kind}{ext}"] for kind in kinds for ext in (".wav", ".pt")]
    p = subprocess.run([sys.executable, "-c", LIBRARY_READS, *paths], env=ENV,
                       capture_output=True, text=True, timeout=90)  # a blocking open would hang
    got = p.stdout.splitlines()
    assert [line.split(": is ")[0] for line in got] == list(map(str, paths)), (got, p.stderr)
    assert all(re.search("pipe|socket|device", line) for line in got), got


# ------------------------------------------------------------------ 4. names that are not UTF-8
def test_a_latin1_file_name_is_enhanced_and_kept(tmp_path, tiny_ckpt):
    src = write_wav(os.path.join(os.fsencode(tmp_path), LATIN1 + b".wav"))
    code, out, err = dcu_run("enhance", src, "--model", tiny_ckpt, "--out", tmp_path / "o")
    assert code == 0, err
    made = os.listdir(os.fsencode(tmp_path / "o"))
    assert made == [LATIN1 + b".wav"]
    assert "caf\\xe9.wav" in out  # shown escaped, never as a broken character
    code, out, err = dcu_run("enhance", src, "--model", tiny_ckpt)  # beside the input
    assert code == 0 and os.path.exists(os.path.join(os.fsencode(tmp_path), LATIN1 + b"_enhanced.wav"))


def test_latin1_names_for_checkpoints_and_evaluation(tmp_path, tiny_ckpt):
    model = os.path.join(os.fsencode(tmp_path), LATIN1 + b".pt")
    shutil.copy(tiny_ckpt, model)
    code, out, err = dcu_run("checkpoint", "info", model)
    assert code == 0 and out.startswith(f"{tmp_path}/caf\\xe9.pt: dcu checkpoint"), err
    for side, seed in (("c", 0), ("n", 1)):
        os.makedirs(tmp_path / side)
        write_wav(os.path.join(os.fsencode(tmp_path / side), LATIN1 + b".wav"), seed=seed)
    code, out, err = dcu_run("evaluate", "--clean", tmp_path / "c", "--noisy", tmp_path / "n",
                             "--baseline", "noisy", "--jobs", "1", "--json", tmp_path / "r.json",
                             "--csv", tmp_path / "r.csv")
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["meta"]["n_files"] == 1
    assert b"\n" + LATIN1 + b"," in (tmp_path / "r.csv").read_bytes()  # the name as the OS holds it
    broken = os.path.join(os.fsencode(tmp_path), b"bad" + LATIN1 + b".wav")
    Path(os.fsdecode(broken)).write_bytes(b"RIFF not audio")
    code, out, err = dcu_run("enhance", broken, "--model", tiny_ckpt, "--out", tmp_path / "o2")
    assert code == 1 and "cannot be read as audio" in one_error_line(err, "badcaf\\xe9.wav")


# ------------------------------------------------------------------ 5. names with a newline
def test_a_newline_in_a_file_name_keeps_every_error_on_one_line(tmp_path, tiny_ckpt):
    bad = tmp_path / "new\nline.wav"
    bad.write_bytes(b"RIFF not audio")
    shown = "new\\nline.wav"
    code, out, err = dcu_run("enhance", bad, "--model", tiny_ckpt, "--out", tmp_path / "o")
    assert code == 1 and "cannot be read as audio" in one_error_line(err, shown)
    missing = tmp_path / "no\nmodel.pt"
    (code, _, err), (code2, _, err2), (code3, _, err3) = dcu_calls(
        ["enhance", bad, bad, "--model", tiny_ckpt, "--out", tmp_path / "o"],
        ["enhance", write_wav(tmp_path / "a.wav"), "--model", missing],
        ["checkpoint", "info", missing])
    assert code == 1 and "two inputs" in one_error_line(err, shown)
    assert code2 == 1 and "no such checkpoint" in one_error_line(err2, "no\\nmodel.pt")
    assert code3 == 1 and "no such checkpoint" in one_error_line(err3, "no\\nmodel.pt")
    with pytest.raises(CheckpointError) as exc:
        dcu.load(missing)
    assert "\n" not in str(exc.value) and "no\\nmodel.pt" in str(exc.value)


# ------------------------------------------------------------------ 6. signals mid-write
SLOW_WRITER = r"""
import os, sys, time, soundfile
marker = sys.argv[1]
real = soundfile.write
def write(file, *args, **kwargs):  # a slow disk: the temporary file is written, then a pause
    real(file, *args, **kwargs)
    open(marker, "w").close()
    time.sleep(60)
soundfile.write = write
from dcu.cli import main
sys.exit(main(sys.argv[2:]))
"""


def default_signals():
    """The child starts as a program started from a terminal does, whatever ran these tests: under
    `nohup` or as a background job SIGHUP or SIGINT arrive ignored, and dcu rightly keeps them so."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_mid_write_leaves_no_temporary_file_and_exits_128_plus_it(tmp_path, tiny_ckpt, signum):
    src, out, marker = write_wav(tmp_path / "a.wav"), tmp_path / "o", tmp_path / "written"
    p = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, marker, "enhance", src, "--model",
                          tiny_ckpt, "--out", out], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=default_signals)
    try:
        deadline = time.time() + TIMEOUT
        while not marker.exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), text(p.communicate()[1])
        assert [f.name for f in out.iterdir()][0].endswith(".tmp")  # caught mid-write
        p.send_signal(signum)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 128 + signum, text(err)
    assert list(out.iterdir()) == []  # neither a temporary file nor a half output
    assert "interrupted" in one_error_line(text(err), "dcu")


def test_signals_held_let_the_block_finish_then_raise_the_signal_it_held():
    """What keeps a training step's update whole (the trainer's save on interruption rests on it):
    the signal comes mid-block, the block runs to its end, then the usual handler raises."""
    from dcu.base.guard import signals_held
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever started the tests
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    ran = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGHUP)  # ignored before the block: stays ignored
                time.sleep(0.05)  # unheld, the handler would have raised by now
                ran.append("end of block")
        assert ran == ["end of block"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        with signals_held():  # nothing held, nothing raised
            ran.append("quiet block")
        assert ran[-1] == "quiet block"
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


# ------------------------------------------------------------------ 7. one output, two writers
BARRIER_WRITER = r"""
import os, sys, time, soundfile
ready, n = sys.argv[1], int(sys.argv[2])
real = soundfile.write
def write(file, *args, **kwargs):  # both processes have planned and enhanced: now both write
    open(os.path.join(ready, str(os.getpid())), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(ready)) < n and time.time() < deadline:
        time.sleep(0.02)
    return real(file, *args, **kwargs)
soundfile.write = write
from dcu.cli import main
sys.exit(main(sys.argv[3:]))
"""


def test_two_enhance_runs_writing_one_name_never_replace_each_other(tmp_path, tiny_ckpt):
    ready, out = tmp_path / "ready", tmp_path / "o"
    ready.mkdir()
    sources = []
    for i, folder in enumerate(("a", "b")):  # two inputs with one name, other audio
        (tmp_path / folder).mkdir()
        sources.append(write_wav(tmp_path / folder / "x.wav", seed=i))
    procs = [subprocess.Popen([sys.executable, "-c", BARRIER_WRITER, ready, "2", "enhance", s,
                               "--model", tiny_ckpt, "--out", out], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for s in sources]
    results = [(p.wait(timeout=TIMEOUT), text(p.communicate()[1])) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    winner = sources[[code for code, _ in results].index(0)]
    loser_err = next(err for code, err in results if code == 1)
    assert "already exists" in one_error_line(loser_err, str(out / "x.wav"))
    assert sorted(f.name for f in out.iterdir()) == ["x.wav"]  # no temporary file either
    code, _, err = dcu_run("enhance", winner, "--model", tiny_ckpt, "--out", tmp_path / "again")
    assert code == 0, err
    assert (out / "x.wav").read_bytes() == (tmp_path / "again" / "x.wav").read_bytes()


def test_save_audio_claims_its_name_even_when_a_file_appears_meanwhile(tmp_path, monkeypatch):
    from dcu.audio import AudioError, save_audio

    dst = tmp_path / "x.wav"
    real = sf.write

    def someone_else_writes_first(file, *args, **kwargs):
        dst.write_bytes(b"theirs")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(sf, "write", someone_else_writes_first)
    with pytest.raises(AudioError, match=re.escape(str(dst)) + ": already exists"):
        save_audio(dst, np.zeros(1600, np.float32), 16000)
    assert dst.read_bytes() == b"theirs" and [f.name for f in tmp_path.iterdir()] == ["x.wav"]
    save_audio(dst, np.zeros(1600, np.float32), 16000, overwrite=True)  # asked: replaced
    assert sf.info(str(dst)).frames == 1600


# ------------------------------------------------------------------ 8-9. training runs
TRAIN = ["--arch", "tiny", "--batch-size", "4", "--segment-seconds", "1", "--items-per-file", "2",
         "--valid-files", "1", "--warmup-steps", "1", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture
def own_corpus(tmp_path, small_corpus):
    """A private copy (real files, not links) of the small corpus, for tests that change it."""
    root = tmp_path / "corpus"
    shutil.copytree(small_corpus, root, symlinks=False)
    return root


@pytest.mark.slow  # two training processes and a resume: > 13 s on the 2 shared cores
def test_two_trainings_in_one_out_refuse_the_second(tmp_path, small_corpus):
    run = tmp_path / "run"
    args = [*TRAIN, "--data", str(small_corpus), "--valid-every", "100000", "--checkpoint-every", "1",
            "--out", str(run)]
    first = subprocess.Popen([sys.executable, "-m", "dcu", "train", *args, "--steps", "100000"],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + TIMEOUT
        while not (run / "last.pt").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert (run / "last.pt").exists(), text(first.communicate()[1])
        for extra in ([], ["--resume"]):
            code, out, err = dcu_run("train", *args, "--steps", "5", *extra, timeout=60)
            assert code == 1, err
            assert "another dcu train" in one_error_line(err, str(run))
        first.send_signal(signal.SIGTERM)  # stops cleanly: no temporary file, 128 + 15
        first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM
    assert not [f for f in run.iterdir() if f.name.endswith(".tmp")]
    step = torch.load(run / "last.pt", weights_only=True)["train_state"]["step"]
    code, out, err = dcu_run("train", *args, "--steps", str(step + 1), "--resume", timeout=TIMEOUT)
    assert code == 0, err  # the lock died with its process


@pytest.mark.slow  # five short runs, each validated: > 13 s on the 2 shared cores
def test_resume_refuses_changed_training_data_unless_allowed(tmp_path, own_corpus):
    from dcu.training import TrainConfig, TrainingError, train

    def cfg(steps, **kw):
        return TrainConfig(arch="tiny", data=str(own_corpus), batch_size=4, steps=steps,
                           segment_seconds=1.0, items_per_file=2, valid_every=1000, valid_files=1,
                           warmup_steps=1, device="cpu", precision="fp32",
                           out=str(tmp_path / "run"), **kw)

    train(cfg(1), progress=False)
    manifest = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["data_manifest"]
    noisy = sorted((own_corpus / "train" / "noisy").iterdir())
    assert len(manifest["files"]) == 8 and {f[0] for f in manifest["files"]} >= {f"noisy/{noisy[0].name}"}
    write_wav(noisy[0], seconds=sf.info(str(noisy[0])).duration, seed=7)  # same name, other audio
    with pytest.raises(TrainingError, match="training data changed .*1 changed.*"
                       + re.escape(noisy[0].name) + ".*--allow-data-change") as err:
        train(cfg(2), resume=True, progress=False)
    assert "\n" not in str(err.value)
    train(cfg(2, allow_data_change=True), resume=True, progress=False)  # asked: goes on
    train(cfg(3), resume=True, progress=False)  # on the data it now records
    shutil.copy(noisy[1], own_corpus / "train" / "noisy" / "zz_new.flac")
    shutil.copy(own_corpus / "train" / "clean" / noisy[1].name, own_corpus / "train" / "clean" / "zz_new.flac")
    with pytest.raises(TrainingError, match="2 added"):
        train(cfg(4), resume=True, progress=False)
    code, out, err = dcu_run("train", *TRAIN, "--data", str(own_corpus), "--steps", "4",
                             "--valid-every", "1000", "--out", str(tmp_path / "run"), "--resume")
    assert code == 1 and "--allow-data-change" in one_error_line(err, "last.pt")


# ------------------------------------------------------------------ 10. one grid, two workers
GRID_WRITER = r"""
import os, sys, time
ready, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
real = os.replace
def replace(src, dst):  # a slow disk: wait (at most 3 s) until the other worker writes too
    if str(dst) == out:
        open(os.path.join(ready, name), "w").close()
        deadline = time.time() + 3
        while len(os.listdir(ready)) < 2 and time.time() < deadline:
            time.sleep(0.02)
    return real(src, dst)
os.replace = replace
from dcu.ablation import add_run
add_run(out, {"name": name, "steps": 1})
"""


def test_two_ablation_workers_finishing_together_keep_both_runs(tmp_path):
    out, ready = tmp_path / "grid.json", tmp_path / "ready"
    ready.mkdir()
    out.write_text(json.dumps({"meta": {}, "input": {}, "runs": [{"name": "earlier"}]}))
    procs = [subprocess.Popen([sys.executable, "-c", GRID_WRITER, ready, out, name], env=ENV,
                              stderr=subprocess.PIPE) for name in ("complex", "real")]
    for p in procs:
        assert p.wait(timeout=TIMEOUT) == 0, text(p.communicate()[1])
    names = sorted(r["name"] for r in json.loads(out.read_text())["runs"])
    assert names == ["complex", "earlier", "real"]


# ------------------------------------------------------------------ 11. Ctrl-C with workers
def test_ctrl_c_during_evaluate_with_workers_is_one_line_and_130(tmp_path):
    # the test split twelve times over (links, under other names): the noisy baseline scores
    # 180 files in seconds, fast enough to finish before the Ctrl-C lands; 2160 take a minute
    from dcu.corpus import list_pairs

    for side in ("clean", "noisy"):
        (tmp_path / side).mkdir()
    pairs = list_pairs("test")
    for copy in range(12):
        for noisy, clean in pairs:
            (tmp_path / "clean" / f"{copy}_{clean.name}").symlink_to(clean.resolve())
            (tmp_path / "noisy" / f"{copy}_{noisy.name}").symlink_to(noisy.resolve())
    log = tmp_path / "err.txt"
    with open(log, "wb") as err:
        p = subprocess.Popen([sys.executable, "-m", "dcu", "evaluate", "--clean", tmp_path / "clean",
                              "--noisy", tmp_path / "noisy", "--baseline", "noisy", "--jobs", "2"],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                             preexec_fn=default_signals)  # as from a terminal, where Ctrl-C is heard
    try:
        deadline = time.time() + TIMEOUT
        while not re.search(rf"\| [1-9]\d*/{12 * len(pairs)}", log.read_text(errors="replace")) and \
                p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, log.read_text()
        os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        p.wait(timeout=60)
    finally:
        p.kill()
    err = log.read_text(errors="replace")
    assert p.returncode == 130, err
    assert "interrupted" in one_error_line(err, "dcu")
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker outlives it
        os.killpg(p.pid, 0)


# ------------------------------------------------------------------ exit status, every command
def test_exit_status_table(tmp_path, tiny_ckpt):
    """0 success; 1 a file, an input or an output failed or was refused; 2 bad options."""
    for side, seed in (("c", 0), ("n", 1)):
        (tmp_path / side).mkdir()
        write_wav(tmp_path / side / "good.wav", seed=seed)
        (tmp_path / side / "bad.wav").write_bytes(b"RIFF not audio")
    failed_file = {
        "evaluate": ["evaluate", "--clean", tmp_path / "c", "--noisy", tmp_path / "n", "--baseline",
                     "noisy", "--jobs", "1"],
        "enhance": ["enhance", tmp_path / "n" / "bad.wav", "--model", tiny_ckpt],
        "checkpoint": ["checkpoint", "info", tmp_path / "missing.pt"],
        "evaluate-missing": ["evaluate", "--clean", tmp_path / "nope", "--noisy", tmp_path / "n",
                             "--baseline", "noisy"],
        "plot-log": ["plot-log", tmp_path / "nope"],
        "export": ["export", "--onnx", tmp_path / "m.onnx", "--model", tmp_path / "missing.pt"],
        "export-taken": ["export", "--onnx", tmp_path / "c" / "good.wav", "--model", tiny_ckpt],
        "bench-taken": ["bench", "--json", tmp_path / "c" / "good.wav"],
        "ablation-foreign": ["ablation", "--grid", "quick", "--out", tmp_path / "c" / "good.wav"],
    }
    for what, (code, out, err) in zip(failed_file, dcu_calls(*failed_file.values())):
        assert code == 1, (what, err)
        assert "Traceback" not in err
    bad_option = {"evaluate": ["evaluate", "--jobs", "0"], "enhance": ["enhance"],
                  "train": ["train", "--steps", "0"], "checkpoint": ["checkpoint", "frobnicate"],
                  "ablation": ["ablation", "--grid", "nope"], "top": ["frobnicate"]}
    for what, (code, out, err) in zip(bad_option, dcu_calls(*bad_option.values())):
        assert code == 2, (what, err)
