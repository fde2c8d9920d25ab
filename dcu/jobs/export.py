"""ONNX export of a DCUnet and an onnxruntime runner: ``dcu export --onnx OUT.onnx``.

What is exported is the spectrogram-domain network, with the batch norm folded into the
convolutions: the stacked noisy STFT ``(batch, 2, 513, frames) float32`` (real part, imaginary
part) in, the stacked enhanced STFT (mask times noisy) out; batch and frames are dynamic, frames
must be ``1 + k * frame_multiple`` (stored in the file's metadata). The STFT and its inverse stay
outside the graph: ONNX has no complex tensors and no inverse-STFT operator, so
:class:`OnnxEnhancer` computes them with :mod:`dcu.stft` around an onnxruntime session, and maps
a 16 kHz waveform to the enhanced waveform exactly like ``model(waveform)``.

Book: book/09_your_recordings.ipynb
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dcu.base.atomic import atomic_write
from dcu.base.guard import shown
from dcu.engine import optimize
from dcu.stft import SAMPLE_RATE, compute_stft, filter_in_stft_domain, padded_length
from dcu.store.checkpoint import CheckpointError, load

OPSET = 17


class SpectrogramNetwork(nn.Module):
    """``model``'s spectrogram-domain part: stacked noisy STFT -> stacked enhanced STFT.

    Input and output ``(batch, 2, freq, frames) float32``, ``[:, 0]`` real, ``[:, 1]`` imaginary.
    Always in eval mode (it is an inference graph).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        # a float32 engine copy on the CPU (the caller's model is untouched): batch norms folded
        with torch.inference_mode(False):
            self.model = optimize(copy.deepcopy(model).cpu().float(), "fp32").eval()

    def train(self, mode: bool = True):  # an inference graph: stay in eval mode
        return super().train(False)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        m_re, m_im = self.model.mask_parts(spec)
        x_re, x_im = spec[:, 0], spec[:, 1]
        return torch.stack([m_re * x_re - m_im * x_im, m_re * x_im + m_im * x_re], dim=1)


def export_onnx(model: nn.Module, path: str | os.PathLike, seconds: float = 2.0) -> Path:
    """Write ``model``'s spectrogram network to ``path`` (a new file), traced on ``seconds``.

    Batch norm is folded into the convolutions (the eval-mode fast path), so the graph holds only
    convolutions, leaky ReLUs, concatenations and the mask. Returns the path written.
    """
    import onnx

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; choose a new file name")
    net = SpectrogramNetwork(model)
    cfg, arch = model.config, model.architecture
    n = padded_length(int(seconds * SAMPLE_RATE), arch.frame_multiple, cfg.hop_length)
    example = torch.stack(torch.view_as_real(compute_stft(torch.zeros(1, n), cfg.n_fft,
                                                          cfg.hop_length)).unbind(-1), dim=1)
    with torch.inference_mode():
        net(example)  # computes and caches the folded weights: constants in the graph
    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape arithmetic (sizes fit the grid)
            torch.onnx.export(net, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["noisy_spec"], output_names=["enhanced_spec"],
                              dynamic_axes={"noisy_spec": {0: "batch", 3: "frames"},
                                            "enhanced_spec": {0: "batch", 3: "frames"}})
        proto = onnx.load(str(tmp))
        meta = {**model.config_dict(), "frame_multiple": arch.frame_multiple,
                "sample_rate": SAMPLE_RATE, "input": "stacked STFT (batch, 2, freq, frames)"}
        onnx.helper.set_model_props(proto, {"dcu": json.dumps(meta)})
        onnx.save(proto, str(tmp))
    atomic_write(path, write, overwrite=False)  # claimed: a file given this name meanwhile stays
    return path


class OnnxEnhancer:
    """Enhance 16 kHz audio with an exported network on onnxruntime.

    ``OnnxEnhancer(path)(waveform)`` takes ``(time,)`` or ``(batch, time)`` float audio, numpy or
    torch, and returns the enhanced waveform of the same type and shape, like ``model(waveform)``.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such ONNX file; create it with dcu export --onnx")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if "dcu" not in props:
            raise ValueError(f"{path}: not written by dcu export (no 'dcu' metadata)")
        self.meta = json.loads(props["dcu"])

    def enhance_spectrogram(self, spec: np.ndarray) -> np.ndarray:
        """Stacked noisy STFT ``(batch, 2, freq, frames)`` -> stacked enhanced STFT."""
        return self.session.run(None, {"noisy_spec": np.ascontiguousarray(spec, np.float32)})[0]

    def __call__(self, waveform):
        is_numpy = not isinstance(waveform, torch.Tensor)
        x = torch.as_tensor(np.asarray(waveform, np.float32) if is_numpy else waveform).float()
        if x.dim() not in (1, 2) or x.shape[-1] == 0:
            raise ValueError(f"expected (time,) or (batch, time) audio, got shape {tuple(x.shape)}")
        squeeze = x.dim() == 1
        m = self.meta

        def transform(spec):
            stacked = torch.stack([spec.real, spec.imag], dim=1).numpy()
            est = torch.from_numpy(self.enhance_spectrogram(stacked))
            return torch.complex(est[:, 0], est[:, 1])
        out = filter_in_stft_domain(x.reshape(-1, x.shape[-1]), transform, m["frame_multiple"],
                                    m["n_fft"], m["hop_length"])
        out = out.squeeze(0) if squeeze else out
        return out.numpy() if is_numpy else out.to(waveform.device)


def export_cli(argv: list[str]) -> int:
    """``dcu export --onnx OUT.onnx [--model NAME_OR_PATH] [--seconds S]``."""
    p = argparse.ArgumentParser(prog="dcu export", description=__doc__.splitlines()[0])
    p.add_argument("--onnx", required=True, type=Path, help="ONNX file to write (a new file)")
    p.add_argument("--model", default="dcunet20",
                   help="shipped model name (dcunet10, dcunet16, dcunet20) or checkpoint path")
    p.add_argument("--seconds", type=float, default=2.0,
                   help="length of the example clip used for tracing (any length runs later)")
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be positive")
    start = time.perf_counter()
    try:
        if args.onnx.exists():
            raise FileExistsError(f"{args.onnx}: already exists; choose a new file name")
        model = load(args.model)
        export_onnx(model, args.onnx, args.seconds)
    except (CheckpointError, FileExistsError) as exc:
        print(shown(f"dcu export: error: {exc}"), file=sys.stderr)
        return 1
    print(f"wrote {args.onnx} ({args.onnx.stat().st_size / 2**20:.1f} MiB) in "
          f"{time.perf_counter() - start:.1f} s")
    wave = torch.randn(1, int(args.seconds * SAMPLE_RATE),
                       generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.inference_mode():
        want = model(wave)
    got = OnnxEnhancer(args.onnx)(wave)
    err = (got - want).abs().max().item() / max(want.abs().max().item(), 1e-12)
    print(f"onnxruntime vs PyTorch on {args.seconds:g} s of noise: "
          f"max relative difference {err:.1e}")
    return 0
