"""dcu.unet: DCUnet against a complex-arithmetic reference, any length, enhance(), bad input."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcu import DCUnet
from dcu.architectures import Architecture
from dcu.losses import wsdr_loss
from dcu.masks import MASKS, compute_mask
from dcu.stft import compute_istft, compute_stft, padded_length


def make(arch="tiny", seed=0, **kwargs):
    torch.manual_seed(seed)
    return DCUnet(arch, **kwargs)


def speechlike(n, batch=None, seed=0):
    """A harmonic tone with noise: deterministic test audio at 16 kHz, float32."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n,) if batch is None else (batch, n)
    t = torch.arange(n) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.sin(2 * math.pi * 660 * t)
    return tone + 0.05 * torch.randn(shape, generator=gen)


def randomise_norms(model, seed=1):
    """Give every batch norm non-trivial affine parameters and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm." in name:
                p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    model.train()
    with torch.no_grad():
        model(speechlike(4000, batch=2, seed=seed).to(next(model.parameters()).dtype))
    return model


def leaky(h, slope):
    return torch.complex(F.leaky_relu(h.real, slope), F.leaky_relu(h.imag, slope))


def reference_forward(model, waveform):
    """DCUnet written with native complex tensors: complex convolutions via torch's complex
    conv2d / conv_transpose2d on W = weight_re + i weight_im, complex channel concatenation."""
    slope = model.config.leaky_slope
    n = waveform.shape[-1]
    length = padded_length(n, model.architecture.frame_multiple)
    spec = compute_stft(F.pad(waveform, (0, length - n)))
    h, skips, sizes = spec[:, None], [], []
    for block in model.encoders:
        sizes.append(h.shape[-2:])
        c = block.conv
        w = torch.complex(c.weight_re, c.weight_im)
        h = F.conv2d(h, w, torch.complex(c.bias_re, c.bias_im), c.stride, c.padding)
        h = leaky(block.norm(h), slope)  # batch norms accept complex input
        skips.append(h)
    skips.pop()
    for i, block in enumerate(model.decoders):
        if i > 0:
            h = torch.cat([h, skips.pop()], dim=1)
        c = block.conv
        target = sizes.pop()
        natural = [(m - 1) * s - 2 * p + k for m, s, p, k in
                   zip(h.shape[-2:], c.stride, c.padding, c.kernel_size)]
        w = torch.complex(c.weight_re, c.weight_im)
        h = F.conv_transpose2d(h, w, torch.complex(c.bias_re, c.bias_im), c.stride, c.padding,
                               [t - m for t, m in zip(target, natural)])
        if block.norm is not None:
            h = leaky(block.norm(h), slope)
    mask = compute_mask(h[:, 0], model.config.mask)
    return compute_istft(mask * spec, length)[..., :n]


# DCUnet-20's layer kinds (7x1 and 1x7 stride-1 layers, then (2, 2) and (2, 1) strides) with
# few channels: the paper-size model is too slow for a double-precision reference on 2 cores.
MINI20 = Architecture(
    "mini-20",
    encoders=((1, 4, (7, 1), (1, 1)), (4, 4, (1, 7), (1, 1)), (4, 8, (7, 5), (2, 2)),
              (8, 6, (5, 3), (2, 1))),
    decoders=((6, 8, (5, 3), (2, 1)), (16, 4, (7, 5), (2, 2)), (8, 4, (1, 7), (1, 1)),
              (8, 1, (7, 1), (1, 1))))


@pytest.mark.parametrize("arch,batch_norm,mask,n,train_too", [
    ("tiny", "complex", "BDT", 5000, True),
    ("tiny", "naive", "BDSS", 3001, True),
    (MINI20, "complex", "BDT", 2900, True),
    ("DCUnet-10", "complex", "UBD", 2100, False),  # eval only: keeps the suite fast
])
def test_matches_a_complex_arithmetic_reference(arch, batch_norm, mask, n, train_too):
    model = randomise_norms(make(arch, batch_norm=batch_norm, mask=mask).double())
    x = speechlike(n, batch=2, seed=3).double()
    with torch.no_grad():
        if train_too:  # train mode: batch statistics over the stacked layout
            reference = copy.deepcopy(model).train()
            model.train()
            torch.testing.assert_close(model(x), reference_forward(reference, x),
                                       rtol=1e-8, atol=1e-9)
        model.eval()
        torch.testing.assert_close(model(x), reference_forward(model, x), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("n", [1, 100, 255, 256, 257, 1023, 1025, 8000, 8001, 16000])
def test_output_length_equals_input_length_tiny(n):
    model = make().eval()
    with torch.no_grad():
        assert model(speechlike(n)).shape == (n,)
        assert model(speechlike(n, batch=3)).shape == (3, n)


def test_output_length_random_lengths():
    gen = torch.Generator().manual_seed(7)
    tiny = make().eval()
    ten = make("DCUnet-10").eval()
    with torch.no_grad():
        for n in torch.randint(300, 20000, (6,), generator=gen).tolist():
            y = tiny(speechlike(n, batch=2))
            assert y.shape == (2, n) and y.dtype == torch.float32 and torch.isfinite(y).all()
        for n in (8000, 12347):  # 0.5 s and an odd length through a paper-size model
            y = ten(speechlike(n))
            assert y.shape == (n,) and torch.isfinite(y).all()


@pytest.mark.parametrize("arch", ["tiny", "DCUnet-10"])
def test_batched_equals_unbatched_and_eval_is_deterministic(arch):
    model = randomise_norms(make(arch)).eval()
    x = speechlike(4000, batch=3, seed=4)
    with torch.no_grad():
        batched = model(x)
        assert torch.equal(model(x), batched)
        for i in range(3):
            torch.testing.assert_close(model(x[i]), batched[i], rtol=1e-4, atol=1e-5)


def test_forward_equals_mask_times_spectrogram():
    model = randomise_norms(make()).eval()
    x = speechlike(4096 + 1024 * 3)  # already a valid length: no padding involved
    with torch.no_grad():
        spec = compute_stft(x[None])
        expected = compute_istft(model.estimate_mask(spec) * spec, x.shape[-1])[0]
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ["DCUnet-10", "DCUnet-20"])
def test_real_twin_matches_the_parameter_count(arch):
    complex_net, real_net = make(arch), make(arch, network="real")
    ratio = real_net.num_parameters() / complex_net.num_parameters()
    assert abs(ratio - 1) < 0.02, ratio
    assert real_net.config.network == "real"
    assert isinstance(real_net.encoders[0].conv, torch.nn.Conv2d)
    assert real_net.encoders[0].conv.in_channels == 2  # (real, imaginary) as two channels
    assert real_net.decoders[-1].conv.out_channels == 2


@pytest.mark.parametrize("network", ["complex", "real"])
@pytest.mark.parametrize("mask", MASKS)
def test_each_mask_runs_and_bounds_the_mask(network, mask):
    model = make(mask=mask, network=network).eval()
    x = speechlike(5000, batch=2)
    with torch.no_grad():
        y = model(x)
        m = model.estimate_mask(compute_stft(x))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert m.shape == (2, 513, 1 + 5000 // 256) and m.is_complex()
    one = 1 + 1e-6  # float32 rounding of tanh(|O|) -> 1
    if mask == "BDT":
        assert (m.abs() <= one).all()
    if mask == "BDSS":
        assert (m.real >= 0).all() and (m.real <= one).all()
        assert (m.imag >= 0).all() and (m.imag <= one).all()


@pytest.mark.parametrize("kwargs", [{}, {"batch_norm": "naive"}, {"network": "real"}])
def test_gradients_reach_every_parameter(kwargs):
    model = make(**kwargs).train()
    clean = speechlike(4000, batch=2, seed=5)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(6))
    wsdr_loss(noisy, clean, model(noisy)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        cancelled_by_bn = name.endswith(("conv.bias", "conv.bias_re", "conv.bias_im")) and \
            ".decoders.{}.".format(len(model.decoders) - 1) not in f".{name}"
        if cancelled_by_bn:  # a bias right before a training-mode batch norm is subtracted out
            assert p.grad.abs().max() < 1e-5, name
        else:
            assert p.grad.abs().max() > 0, name


# -- enhance ---------------------------------------------------------------------------------

def test_enhance_numpy_and_tensor_in_kind_out():
    model = make().eval()
    x = speechlike(7000)
    with torch.no_grad():
        direct = model(x)
    out = model.enhance(x.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (7000,)
    np.testing.assert_allclose(out, direct.numpy(), atol=1e-6)  # 16 kHz and short: no chunking
    t = model.enhance(x.double())
    assert isinstance(t, torch.Tensor) and t.shape == (7000,) and not t.requires_grad
    model.train()
    model.enhance(x)
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("rate,n", [(8000, 4001), (44100, 22051)])
def test_enhance_other_rates(rate, n):
    model = make().eval()
    t = np.arange(n) / rate
    x = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    out = model.enhance(x, sample_rate=rate)
    assert out.shape == (n,) and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out).max() > 0
    stereo = model.enhance(torch.from_numpy(np.stack([x, 0.5 * x])), rate)
    assert stereo.shape == (2, n)


def test_enhance_stereo_is_per_channel():
    model = randomise_norms(make()).eval()
    x = speechlike(9000, batch=2, seed=8).numpy()
    both = model.enhance(x)
    assert both.shape == (2, 9000)
    for c in range(2):
        np.testing.assert_allclose(both[c], model.enhance(x[c]), atol=1e-5)


def test_enhance_long_input_in_chunks():
    """25 s through the tiny model in 4 s chunks: the length is kept and, because chunk starts
    lie on the model's frame grid, the output equals the unchunked one except within the tiny
    model's receptive field of a chunk edge."""
    model = randomise_norms(make()).eval()
    x = speechlike(25 * 16000, seed=9).numpy()
    chunked = model.enhance(x, chunk_seconds=4.0, overlap_seconds=1.0)
    assert chunked.shape == x.shape and np.isfinite(chunked).all()
    whole = model.enhance(x, chunk_seconds=30.0)
    diff = np.abs(chunked - whole)
    # chunk geometry (see dcu.unet._chunked): 4 s and 1 s rounded to multiples of 4 * 256 samples
    block = model.architecture.frame_multiple * 256
    chunk = 64000 // block * block
    step = (chunk - 16000) // block * block
    starts = np.arange(step, x.size, step)
    edges = np.concatenate([starts, starts - step + chunk])
    near = np.abs(np.arange(x.size)[:, None] - edges[None, :]).min(axis=1) <= 4096
    assert diff[~near].max() < 1e-5  # identical away from the seams
    rms = np.sqrt(np.mean(whole ** 2))
    assert diff[near].max() < 0.2 * rms  # measured ~0.05 * rms: the cross-fade hides the seams
    assert np.sqrt(np.mean(diff[near] ** 2)) < 0.02 * rms  # measured ~0.003 * rms


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad,error,message", [
    (torch.zeros(2, 2, 100), ValueError,
     r"shape \(batch, time\) or \(time,\), got shape \(2, 2, 100\)"),
    (torch.zeros(0), ValueError, "empty waveform"),
    (torch.zeros(2, 0), ValueError, "empty waveform"),
    (torch.tensor([0.0, float("nan"), 0.0] * 400), ValueError, "NaN or infinite"),
    (torch.zeros(1000, dtype=torch.int16), TypeError,
     "real floating-point waveform, got torch.int16"),
    (torch.zeros(1000, dtype=torch.complex64), TypeError, "got torch.complex64"),
    (np.zeros(1000, dtype=np.float32), TypeError, "use model.enhance"),
])
def test_forward_rejects_bad_input(bad, error, message):
    with pytest.raises(error, match=message):
        make()(bad)


@pytest.mark.parametrize("bad,rate,error,message", [
    (np.zeros((1, 2, 100), dtype=np.float32), 16000, ValueError, r"got shape \(1, 2, 100\)"),
    (np.zeros(0, dtype=np.float32), 16000, ValueError, "empty audio"),
    (np.array([0.0, np.inf] * 500), 16000, ValueError, "NaN or infinite"),
    (np.zeros(1000, dtype=np.int16), 16000, TypeError,
     r"floating-point audio .* got int16.* / 32768"),
    (torch.zeros(1000, dtype=torch.int32), 16000, TypeError, "got torch.int32"),
    (np.ones(1000, dtype=np.complex64), 16000, TypeError, "got complex64"),
    (torch.ones(1000, dtype=torch.complex64), 16000, TypeError, "got torch.complex64"),
    (np.zeros(1000, dtype=np.float32), 0, ValueError, "sample rates must be positive"),
])
def test_enhance_rejects_bad_input(bad, rate, error, message):
    with pytest.raises(error, match=message):
        make().enhance(bad, rate)


@pytest.mark.parametrize("kwargs,message", [
    ({"arch": "DCUnet-30"}, "unknown architecture 'DCUnet-30'; choose one of tiny, small, DCUnet-10"),
    ({"mask": "sigmoid"}, "unknown mask 'sigmoid'; choose one of UBD, BDSS, BDT"),
    ({"network": "quaternion"}, "unknown network 'quaternion'; choose 'complex' or 'real'"),
    ({"batch_norm": "layer"}, "unknown batch_norm 'layer'; choose one of complex, naive"),
    ({"arch": "DCUnet-20", "n_fft": 256}, r"DCUnet-20 needs \(n_fft // 2\) divisible by 256"),
])
def test_unknown_names_error_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DCUnet(**kwargs)
