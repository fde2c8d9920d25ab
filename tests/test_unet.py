"""dcu.unet: DCUnet against a complex-arithmetic reference, any length, bad input."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcu import DCUnet
from dcu.losses import wsdr_loss
from dcu.masks import MASKS, compute_mask
from dcu.stft import compute_istft, compute_stft, padded_length
from synthetic import MINI20, make, randomise_norms, speechlike


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
    (np.zeros(1000, dtype=np.float32), TypeError, "use dcu.jobs.enhance.enhance_recording"),
])
def test_forward_rejects_bad_input(bad, error, message):
    with pytest.raises(error, match=message):
        make()(bad)


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
