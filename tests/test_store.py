"""dcu.store: save/load round trips, clear errors on unusable files, no code execution, and the
``dcu checkpoint`` command (info, strip, interpolate)."""

import os
import re

import pytest
import torch

import dcu
from dcu import DCUnet
from dcu.engine import optimize
from dcu.store.checkpoint import SHIPPED, CheckpointError, read_checkpoint, with_checksum


SHIPPED_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "checkpoints"


def trained(arch="tiny", seed=0, **kwargs):
    """A model whose weights and batch-norm statistics are not the initial ones."""
    torch.manual_seed(seed)
    model = DCUnet(arch, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        model(torch.randn(2, 3000))
    return model.eval()


def about(path, message):
    """Pattern for an error message that starts with the file's name."""
    return re.escape(str(path)) + ": " + message


def audio(n=3000, seed=1):
    return torch.randn(2, n, generator=torch.Generator().manual_seed(seed)) * 0.1


@pytest.mark.parametrize("arch,kwargs", [
    ("tiny", {}), ("tiny", {"mask": "BDSS", "batch_norm": "naive"}),
    ("tiny", {"network": "real", "mask": "UBD"}), ("DCUnet-10", {}),
])
def test_save_load_gives_identical_output(tmp_path, arch, kwargs):
    model = trained(arch, **kwargs)
    path = dcu.save(model, tmp_path / "model.pt")
    assert path == tmp_path / "model.pt"
    loaded = dcu.load(path)  # the reference code, like the saved model
    assert type(loaded) is DCUnet and not loaded.training
    assert not any(type(m).__module__.startswith("dcu.engine") for m in loaded.modules())
    assert loaded.config == model.config
    x = audio()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        fast = optimize(dcu.load(path))  # on the engine: the same up to float rounding
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name  # weights and running statistics


def test_half_precision_round_trip(tmp_path):
    model = trained("DCUnet-10")
    full = dcu.save(model, tmp_path / "full.pt")
    half = dcu.save(model, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    stored = read_checkpoint(half)["state_dict"]
    assert stored["encoders.0.conv.weight_re"].dtype == torch.float16
    assert stored["encoders.0.norm.num_batches_tracked"].dtype == torch.long
    loaded = dcu.load(half)
    assert loaded.encoders[0].conv.weight_re.dtype == torch.float32
    x = audio()
    with torch.no_grad():
        ref, out = model(x), loaded(x)
    err = (out - ref).norm() / ref.norm()
    assert 0 < err < 1e-2  # rounded, but close


def test_metadata_is_kept(tmp_path):
    model = trained()
    meta = {"data": "shipped corpus", "steps": 1200, "metrics": {"pesq": 2.5, "stoi": [0.9, 0.8]},
            "lr": torch.tensor(1e-3), "device": torch.device("cpu"), "note": None}
    loaded = dcu.load(dcu.save(model, tmp_path / "m.pt", **meta))
    md = loaded.metadata
    assert md["data"] == "shipped corpus" and md["steps"] == 1200
    assert md["metrics"] == {"pesq": 2.5, "stoi": [0.9, 0.8]} and md["note"] is None
    assert md["lr"] == pytest.approx(1e-3)  # one-element tensors become numbers
    assert md["device"] == "cpu"  # other objects become strings
    assert md["dcu_version"] == dcu.__version__ and md["torch_version"] == torch.__version__
    assert md["num_parameters"] == model.num_parameters()


def test_shipped_names(tmp_path, monkeypatch):
    monkeypatch.setenv("DCU_DATA", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        dcu.load("dcunet20")
    message = str(err.value)
    assert str(tmp_path / "checkpoints" / "dcunet20.pt") in message and "dcu train" in message
    assert set(SHIPPED) == {"dcunet10", "dcunet16", "dcunet20"}
    dcu.save(trained(), tmp_path / "checkpoints" / "dcunet10.pt")
    assert dcu.load("DCUnet-10").config.arch == "tiny"  # found by name under $DCU_DATA


def test_missing_file_errors_naming_it(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=about(missing, "no such checkpoint file")):
        dcu.load(missing)


def test_truncated_file_errors_naming_it(tmp_path):
    path = dcu.save(trained(), tmp_path / "model.pt")
    data = path.read_bytes()
    for cut in (len(data) // 2, 100):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError,
                           match=about(bad, "cannot read checkpoint .*truncated or corrupt")):
            dcu.load(bad)


def test_files_that_are_not_checkpoints(tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=about(noise, "cannot read checkpoint")):
        dcu.load(noise)
    plain = tmp_path / "plain.pt"
    torch.save(trained().state_dict(), plain)  # a bare state_dict has no config
    with pytest.raises(CheckpointError, match=about(plain, "not a dcu checkpoint .*dcu.save")):
        dcu.load(plain)
    newer = tmp_path / "newer.pt"
    payload = read_checkpoint(dcu.save(trained(), tmp_path / "ok.pt"))
    torch.save({**payload, "format_version": 99}, newer)
    with pytest.raises(CheckpointError, match=about(newer, "written by a newer dcu")):
        dcu.load(newer)
    with pytest.raises(TypeError, match="expects a dcu.DCUnet"):
        dcu.save(torch.nn.Linear(2, 2), tmp_path / "linear.pt")


def test_architecture_mismatch_with_arch_given(tmp_path):
    path = dcu.save(trained(), tmp_path / "tiny.pt")
    assert dcu.load(path, arch="tiny").config.arch == "tiny"
    with pytest.raises(CheckpointError,
                       match=about(path, "checkpoint holds a tiny, not the requested DCUnet-20")):
        dcu.load(path, arch="20")


def test_state_dict_that_does_not_match(tmp_path):
    payload = read_checkpoint(dcu.save(trained(), tmp_path / "ok.pt"))
    wrong_shape = tmp_path / "wrong_shape.pt"
    state = dict(payload["state_dict"])
    state["encoders.1.conv.weight_re"] = torch.zeros(3, 3, 3, 3)
    # consistent files (checksum recomputed) whose weights do not fit the architecture
    torch.save(with_checksum({**payload, "state_dict": state}), wrong_shape)
    with pytest.raises(CheckpointError, match=about(wrong_shape, "weights do not match a tiny")):
        dcu.load(wrong_shape)
    missing_key = tmp_path / "missing_key.pt"
    state = {k: v for k, v in payload["state_dict"].items() if k != "decoders.0.conv.bias_im"}
    torch.save(with_checksum({**payload, "state_dict": state}), missing_key)
    with pytest.raises(CheckpointError, match=about(missing_key, "weights do not match")):
        dcu.load(missing_key)
    bad_config = tmp_path / "bad_config.pt"  # stamped: what it says is unknown, not damaged
    torch.save(with_checksum({**payload, "config": {**payload["config"], "colour": "red"}}), bad_config)
    with pytest.raises(CheckpointError,
                       match=about(bad_config, "checkpoint config is not understood")):
        dcu.load(bad_config)


class RunsCode:
    """Unpickling this object calls ``os.system`` (or ``open``) to create a marker file."""

    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return self.call, self.arg


@pytest.mark.parametrize("kind", ["os.system", "open"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_malicious_pickle_is_refused_without_running(tmp_path, kind, wrapped):
    marker = tmp_path / "pwned"
    evil = RunsCode(os.system, (f"touch '{marker}'",)) if kind == "os.system" else \
        RunsCode(open, (str(marker), "w"))
    path = tmp_path / "evil.pt"
    if wrapped:  # hidden inside an otherwise valid checkpoint
        payload = read_checkpoint(dcu.save(trained(), tmp_path / "ok.pt"))
        payload["metadata"] = {"note": evil}
        torch.save(payload, path)
    else:
        torch.save(evil, path)
    with pytest.raises(CheckpointError, match=about(path, "cannot read checkpoint .*unsafe")):
        dcu.load(path)
    assert not marker.exists()
    # the file really is malicious: an unrestricted unpickler runs the code
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_save_is_atomic_and_replaces(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    first, second = trained(seed=0), trained(seed=1)
    dcu.save(first, path, steps=1)
    dcu.save(second, path, steps=2)  # saving over a checkpoint replaces it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp files left
    loaded = dcu.load(path)
    assert loaded.metadata["steps"] == 2
    assert torch.equal(loaded.decoders[0].conv.weight_re, second.decoders[0].conv.weight_re)
    before = path.read_bytes()

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dcu.save(first, path)
    assert path.read_bytes() == before  # the old checkpoint is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    monkeypatch.undo()
    dcu.save(first, tmp_path / "new" / "deep" / "model.pt")  # missing folders are created
    assert (tmp_path / "new" / "deep" / "model.pt").exists()


def test_load_places_model_on_map_location(tmp_path):
    model = dcu.load(dcu.save(trained(), tmp_path / "m.pt"), map_location="cpu")
    assert next(model.parameters()).device.type == "cpu"
    assert read_checkpoint(tmp_path / "m.pt")["config"] == model.config_dict()  # plain data


# --------------------------------------------------------------------------- integrity (issue 15)
def test_a_flipped_byte_inside_a_tensor_is_detected(tmp_path):
    model = trained()
    path = dcu.save(model, tmp_path / "m.pt")
    weight = model.decoders[0].conv.weight_re.detach().numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = bytes(data).find(weight)
    assert at > 0  # the tensor's bytes are stored as they are
    data[at + len(weight) // 2] ^= 0x10
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=about(bad, "its tensors do not match the checksum")):
        dcu.load(bad)
    assert len(dcu.load(path).metadata["tensor_sha256"]) == 64


def test_checkpoints_written_before_the_checksum_still_load(tmp_path):
    from dcu.store.checkpoint import atomic_torch_save

    model = trained()
    payload = read_checkpoint(dcu.save(model, tmp_path / "new.pt"))
    for key in ("tensor_sha256", "checkpoint_sha256"):  # as files written before checksums existed
        del payload["metadata"][key]
    atomic_torch_save({**payload, "format_version": 1}, tmp_path / "old.pt")
    x = audio()
    with torch.no_grad():
        assert torch.equal(dcu.load(tmp_path / "old.pt")(x), model(x))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoints_store_float16_with_a_checksum_and_load_as_float32(name):
    path = SHIPPED_DIR / SHIPPED[name]
    assert path.exists(), f"{path}: a shipped checkpoint is missing from data/checkpoints"
    payload = read_checkpoint(path)  # verifies the stored checksum
    assert len(payload["metadata"]["tensor_sha256"]) == 64 and "train_state" not in payload
    floats = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    model = dcu.load(name)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.config.arch == payload["config"]["arch"]


@pytest.mark.parametrize("edit,message", [
    (lambda p: {"format": p["format"], "format_version": 1}, "dcu checkpoint without its 'config' field"),
    (lambda p: {k: v for k, v in p.items() if k != "state_dict"}, "dcu checkpoint without its 'state_dict' field"),
    (lambda p: {k: v for k, v in p.items() if k != "metadata"}, "dcu checkpoint without its 'metadata' field"),
    (lambda p: {**p, "config": ["tiny"]}, "field 'config' holds a list"),
    (lambda p: {**p, "format_version": "1"}, "field 'format_version' holds a str"),
    (lambda p: {**p, "state_dict": {**p["state_dict"], "encoders.0.conv.weight_re": [1.0]}},
     "weight 'encoders.0.conv.weight_re' is not a tensor"),
    (lambda p: with_checksum({**p, "config": {**p["config"], "arch": "DCUnet-99"}}),
     "checkpoint config is not understood"),
])
def test_a_dcu_header_without_dcus_fields_is_one_line(tmp_path, edit, message):
    payload = read_checkpoint(dcu.save(trained(), tmp_path / "ok.pt"))
    bad = tmp_path / "bad.pt"
    torch.save(edit(payload), bad)
    with pytest.raises(CheckpointError, match=about(bad, message)) as err:
        dcu.load(bad)
    assert "\n" not in str(err.value)


def test_checkpoints_get_the_umask_permissions_and_stale_temporaries_go(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".m.pt.dcu-{dead}-x1y2z3.tmp"  # what a save killed with -9 leaves
    stale.write_bytes(b"half a checkpoint")
    old = os.umask(0o022)
    try:
        path = dcu.save(trained(), tmp_path / "m.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_training_payload_has_the_saved_format_and_strip_removes_only_the_training_state(
        tmp_path, capsys):
    import platform

    from dcu.store.checkpoint import atomic_torch_save, make_payload
    from dcu.cli import main

    model = trained()
    state = {"optimizer": {"state": {}, "param_groups": []}, "step": 7, "torch_rng": torch.get_rng_state()}
    payload = make_payload(model, {"step": 7, "valid": {"pesq": 2.25}}, state)
    assert payload["metadata"]["dcu_version"] == dcu.__version__  # as dcu.save records
    assert payload["metadata"]["python_version"] == platform.python_version()
    src, dst = tmp_path / "best.pt", tmp_path / "ship" / "model.pt"
    atomic_torch_save(payload, src)
    assert main(["checkpoint", "strip", str(src), str(dst)]) == 0
    shipped = read_checkpoint(dst)  # checks the fresh checksum too
    assert "train_state" not in shipped and "train_state" in read_checkpoint(src)
    assert shipped["metadata"]["step"] == 7 and shipped["config"] == model.config_dict()
    assert all(torch.equal(shipped["state_dict"][k], v) for k, v in model.state_dict().items())
    capsys.readouterr()
    before = dst.read_bytes()
    assert main(["checkpoint", "strip", str(src), str(dst)]) == 1  # never overwrites
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dcu checkpoint: error: {dst}: already exists; choose another name or delete "
                   "it first"] and dst.read_bytes() == before
    half = tmp_path / "ship" / "half.pt"
    assert main(["checkpoint", "strip", "--half", str(src), str(half)]) == 0
    stored = read_checkpoint(half)["state_dict"]
    assert stored.keys() == model.state_dict().keys()
    assert all(torch.equal(stored[k], v.half() if v.is_floating_point() else v)
               for k, v in model.state_dict().items())
    capsys.readouterr()
    assert main(["checkpoint", "info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "arch=tiny" in out and "step: 7" in out and "pesq=2.25" in out and "resumable" in out
    assert main(["checkpoint", "info", str(tmp_path / "nothing.pt")]) == 1
    assert "nothing.pt: no such checkpoint" in capsys.readouterr().err


def test_stages_lists_the_training_history_oldest_first():
    from dcu.training import stages

    first = {"step": 1447, "train_config": {"batch_size": 24}, "valid": {"si_sdr": 17.8}}
    second = {"step": 145, "train_config": {"batch_size": 8}, "previous_stage": first}
    meta = {"step": 300, "train_config": {"batch_size": 8, "extra_speech": "p239"},
            "valid": {"score": 0.59}, "previous_stage": second, "torch_version": "x"}
    got = stages(meta)
    assert [s["step"] for s in got] == [1447, 145, 300]
    assert got[0] == first and got[1]["valid"] == {} and got[2]["train_config"]["extra_speech"] == "p239"
    assert stages({"step": 5}) == [{"step": 5, "train_config": {}, "valid": {}}]  # trained once
    assert stages({}) == []


def test_stages_of_a_checkpoint_fine_tuned_from_another(tmp_path):
    from dcu.training import stages

    torch.manual_seed(0)
    start = dcu.save(dcu.DCUnet("tiny"), tmp_path / "a.pt", step=10, train_config={"lr": 1e-3})
    model = dcu.load(start)
    tuned = dcu.save(model, tmp_path / "b.pt", step=3, train_config={"lr": 1e-4},
                     previous_stage={k: model.metadata[k] for k in ("step", "train_config")})
    assert [(s["step"], s["train_config"]["lr"]) for s in stages(dcu.load(tuned).metadata)] == \
        [(10, 1e-3), (3, 1e-4)]


def test_interpolate_is_the_weighted_mean_of_two_checkpoints(tmp_path, capsys):
    from dcu.store.checkpoint import tensor_checksum
    from dcu.store.command import interpolate
    from dcu.cli import main

    start, end = trained(seed=0), trained(seed=1)
    with torch.no_grad():  # distinct batch counters, to see which one is kept
        for name, buf in end.named_buffers():
            if not buf.is_floating_point():
                buf.add_(5)
    a = dcu.save(start, tmp_path / "a.pt", step=0)
    b = dcu.save(end, tmp_path / "b.pt", step=9, valid={"pesq": 2.5},
                 previous_stage={"step": 0, "train_config": {"lr": 1e-3}})
    sa, sb = start.state_dict(), end.state_dict()
    for alpha in (0.0, 0.3, 1.0):
        out = interpolate(a, b, alpha, tmp_path / f"m{alpha}.pt")
        payload = read_checkpoint(out)  # checks the fresh checksum too
        got = payload["state_dict"]
        assert got.keys() == sb.keys()
        for k, vb in sb.items():
            if vb.is_floating_point():
                torch.testing.assert_close(got[k], sa[k] + alpha * (vb - sa[k]), rtol=1e-6, atol=1e-6)
            else:
                assert torch.equal(got[k], vb), k  # batch counters: the end's
        assert payload["config"] == end.config_dict() and payload["metadata"]["step"] == 9
        record = payload["metadata"]["interpolation"]
        assert record["alpha"] == alpha and record["end"]["file"] == str(b)
        assert record["start"]["tensor_sha256"] == tensor_checksum(read_checkpoint(a))
        # the end's validation is not the mix's: it moves into the record
        assert "valid" not in payload["metadata"] and record["end"]["valid"] == {"pesq": 2.5}
        assert (record["start"]["step"], record["end"]["step"]) == (0, 9)
    x = audio()
    with torch.no_grad():  # the end points are the two models themselves
        torch.testing.assert_close(dcu.load(tmp_path / "m0.0.pt")(x), start(x))
        torch.testing.assert_close(dcu.load(tmp_path / "m1.0.pt")(x), end(x))
    assert main(["checkpoint", "interpolate", str(a), str(b), str(tmp_path / "h.pt"),
                 "--alpha", "0.5", "--half"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'h.pt'}"
    from dcu.training import stages
    mixed = interpolate(a, b, 0.5, tmp_path / "v.pt", valid={"score": 0.6})
    assert stages(dcu.load(mixed).metadata) == [
        {"step": 0, "train_config": {"lr": 1e-3}, "valid": {}},
        {"step": 9, "train_config": {}, "valid": {"score": 0.6}, "alpha": 0.5}]
    half = read_checkpoint(tmp_path / "h.pt")["state_dict"]
    assert all(v.dtype == torch.float16 for k, v in half.items() if sb[k].is_floating_point())
    torch.testing.assert_close(half["encoders.0.conv.weight_re"].float(),
                               (0.5 * (sa["encoders.0.conv.weight_re"] + sb["encoders.0.conv.weight_re"])).half().float())


def test_interpolate_refuses_other_models_bad_alpha_and_existing_files(tmp_path, capsys):
    from dcu.store.command import interpolate
    from dcu.cli import main

    a = dcu.save(trained(), tmp_path / "a.pt")
    other = dcu.save(trained(mask="BDSS"), tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=about(other, r"not the same model as .*a\.pt "
                                                           r"\(config differs in mask\)")):
        interpolate(a, other, 0.5, tmp_path / "x.pt")
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(CheckpointError, match=r"must lie in \[0, 1\]"):
            interpolate(a, a, alpha, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    before = other.read_bytes()
    assert main(["checkpoint", "interpolate", str(a), str(a), str(other), "--alpha", "0.5"]) == 1
    assert capsys.readouterr().err.strip() == (f"dcu checkpoint: error: {other}: already exists; "
                                               "choose another name or delete it first")
    assert other.read_bytes() == before
