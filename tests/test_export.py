"""dcu.jobs.export: the ONNX graph and the onnxruntime runner give PyTorch's output."""

import numpy as np
import pytest
import torch

import dcu
from dcu.jobs.export import OnnxEnhancer, SpectrogramNetwork, export_cli, export_onnx
from dcu.losses import wsdr_loss

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = dcu.DCUnet("tiny")
    # a few training steps so batch-norm statistics and weights are not at their defaults
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        noisy = torch.randn(4, 4000) * 0.1
        loss = wsdr_loss(noisy, noisy * 0.5, model(noisy))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", seconds=0.5)


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def test_onnx_spectrogram_network_matches_pytorch_for_other_batch_and_frames(tiny_model, exported):
    runner = OnnxEnhancer(exported)
    spec = torch.randn(3, 2, 513, 1 + 4 * 9)  # traced on 1 x 33 frames; frames must be 1 + 4k
    with torch.inference_mode():
        want = SpectrogramNetwork(tiny_model)(spec)
    assert _rel(runner.enhance_spectrogram(spec.numpy()), want.numpy()) < 1e-5


@pytest.mark.parametrize("shape", [(16000,), (2, 12345), (1, 300)])
def test_onnx_runner_equals_model_on_waveforms(tiny_model, exported, shape):
    wave = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.inference_mode():
        want = tiny_model(wave)
    runner = OnnxEnhancer(exported, threads=1)
    got = runner(wave)
    assert isinstance(got, torch.Tensor) and got.shape == wave.shape
    assert _rel(got, want) < 1e-5
    got_np = runner(wave.numpy())
    assert isinstance(got_np, np.ndarray) and _rel(got_np, want.numpy()) < 1e-5


def test_export_keeps_metadata_and_leaves_the_model_alone(tiny_model, exported):
    runner = OnnxEnhancer(exported)
    assert runner.meta["arch"] == "tiny" and runner.meta["frame_multiple"] == 4
    assert runner.meta["mask"] == tiny_model.config.mask
    assert not tiny_model.training and next(tiny_model.parameters()).dtype == torch.float32


def test_export_never_overwrites_and_errors_are_clear(tiny_model, exported, tmp_path):
    with pytest.raises(FileExistsError, match="already exists"):
        export_onnx(tiny_model, exported)
    with pytest.raises(FileNotFoundError, match="dcu export"):
        OnnxEnhancer(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="shape"):
        OnnxEnhancer(exported)(np.zeros((1, 1, 10), np.float32))


def test_export_cli_from_a_checkpoint(tiny_model, tmp_path, capsys):
    ckpt = dcu.save(tiny_model, tmp_path / "tiny.pt")
    out = tmp_path / "tiny.onnx"
    assert export_cli(["--onnx", str(out), "--model", str(ckpt), "--seconds", "0.5"]) == 0
    assert out.exists() and "max relative difference" in capsys.readouterr().out
    before = out.read_bytes()  # an existing output is refused in one line (exit status 1)
    assert export_cli(["--onnx", str(out), "--model", str(ckpt)]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


def test_export_of_layers_that_use_gauss_eagerly(tiny_model, tmp_path, monkeypatch):
    from dcu.engine import kernels

    monkeypatch.setattr(kernels, "GAUSS_MIN_MACS", 1)  # eager inference uses Gauss's trick
    path = export_onnx(tiny_model, tmp_path / "gauss.onnx", seconds=0.5)
    wave = torch.randn(2, 9000, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.inference_mode():
        want = tiny_model(wave)
    assert _rel(OnnxEnhancer(path)(wave), want) < 1e-5
