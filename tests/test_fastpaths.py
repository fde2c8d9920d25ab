"""Every fast path equals the reference code (``fast_paths(False)``) within float tolerance.

The fast paths (dcu.fastpaths, used by dcu.complex_nn and dcu.unet): complex batch norm as one autograd function, Gauss's
three-convolution complex convolution, PyTorch's GEMM kernel for transposed convolutions with few
output channels, batch norm folded into the convolution at inference, channels-last inference
and in-place activations. Each is compared with the plain code on the same weights and inputs,
outputs and gradients, in float64 (agreement to ~1e-12) and float32.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import dcu
from dcu import fastpaths
from dcu.architectures import Architecture
from dcu.complex_nn import (ComplexBatchNorm2d, ComplexConv2d, ComplexConvTranspose2d,
                            channel_mix, conv_transpose2d, fast_paths, fast_paths_enabled)
from dcu.losses import wsdr_loss


def _mirror(encoders):
    """Decoders mirroring ``encoders`` with skip connections, the last one giving the mask."""
    decoders, prev = [], None
    for i, (cin, cout, k, s) in enumerate(reversed(encoders)):
        last = i == len(encoders) - 1
        decoders.append((cout if i == 0 else prev + cout, 1 if last else cin, k, s))
        prev = cin
    return tuple(decoders)


# every kind of layer the paper's table has: (7,1)/(1,7) kernels, (1,1), (2,2), (2,1) strides
_ENC = ((1, 4, (7, 1), (1, 1)), (4, 4, (1, 7), (1, 1)), (4, 6, (7, 5), (2, 2)),
        (6, 6, (5, 3), (2, 1)))
MINI = Architecture("mini", _ENC, _mirror(_ENC))


@pytest.fixture(params=["gauss-everywhere", "default"])
def gauss_threshold(request, monkeypatch):
    """Run a test with Gauss's trick on every eligible layer (the test models are small), and
    with the default threshold (the stacked convolution on these small layers)."""
    if request.param == "gauss-everywhere":
        monkeypatch.setattr(fastpaths, "GAUSS_MIN_MACS", 1)
    return request.param


def _randomise_norms(model, seed=0):
    """Non-trivial batch-norm parameters and running statistics (the defaults fold trivially)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ComplexBatchNorm2d):
                m.weight.add_(0.2 * torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))
                m.bias.normal_(generator=gen)
                m.running_mean.normal_(generator=gen)
                a, b = torch.rand(2, m.num_features, generator=gen, dtype=m.weight.dtype) + 0.5
                m.running_covar.copy_(torch.stack([a, 0.3 * torch.sqrt(a * b), b]))
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(generator=gen)
                m.running_mean.normal_(generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return model


def _close(a, b, tol, atol=0.0):
    """``max |a - b| <= tol * max |b| + atol``."""
    assert a.shape == b.shape
    err, scale = (a - b).abs().max().item(), b.abs().max().item()
    assert err <= tol * scale + atol, (err, scale)


def test_fast_paths_switch_restores_state_even_after_errors():
    assert fast_paths_enabled()
    with pytest.raises(RuntimeError), fast_paths(False):
        assert not fast_paths_enabled()
        raise RuntimeError("boom")
    assert fast_paths_enabled()


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "complex"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_complex_batch_norm_training_matches_reference(layout, dtype, tol):
    torch.manual_seed(0)
    fast = _randomise_norms(ComplexBatchNorm2d(5).to(dtype))
    ref = copy.deepcopy(fast)
    x = torch.randn(3, 10, 7, 6, dtype=dtype) * 2 + 0.5
    x[:, 5:] += 0.7 * x[:, :5]  # correlated real and imaginary parts: whitening matters
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if layout == "complex":
        x = torch.complex(x[:, :5], x[:, 5:])
    grad = torch.randn_like(x)
    outs = []
    for model, enabled in ((fast, True), (ref, False)):
        xi = x.clone().requires_grad_()
        with fast_paths(enabled):
            y = model(xi)
        (y * grad.conj()).real.sum().backward()
        outs.append((y, xi.grad))
    (y1, g1), (y2, g2) = outs
    assert y1.dtype == x.dtype
    _close(torch.view_as_real(y1) if y1.is_complex() else y1,
           torch.view_as_real(y2) if y2.is_complex() else y2, tol)
    _close(torch.view_as_real(g1) if g1.is_complex() else g1,
           torch.view_as_real(g2) if g2.is_complex() else g2, tol)
    _close(fast.weight.grad, ref.weight.grad, tol)
    _close(fast.bias.grad, ref.bias.grad, tol)
    _close(fast.running_mean, ref.running_mean, tol)
    _close(fast.running_covar, ref.running_covar, tol)
    assert fast.num_batches_tracked.item() == ref.num_batches_tracked.item() == 1


def test_complex_batch_norm_eval_matches_reference_with_and_without_autograd():
    torch.manual_seed(1)
    bn = _randomise_norms(ComplexBatchNorm2d(4).double()).eval()
    x = torch.randn(2, 8, 5, 3, dtype=torch.float64)
    with fast_paths(False):
        ref = bn(x)
    with torch.no_grad():
        _close(bn(x), ref, 1e-12)  # the per-channel affine map
    xg = x.clone().requires_grad_()
    y = bn(xg)  # eval with autograd on: still differentiable
    y.sum().backward()
    _close(y, ref, 1e-12)
    assert xg.grad is not None and bn.weight.grad is not None


def test_channel_mix_is_a_per_channel_2x2_map():
    torch.manual_seed(2)
    c = 3
    a, b = torch.randn(2, 2, c, dtype=torch.float64), torch.randn(2, 2, c, dtype=torch.float64)
    x, y = torch.randn(2, 2 * c, 4, 5, dtype=torch.float64), torch.randn(2, 2 * c, 4, 5, dtype=torch.float64)
    shift = torch.randn(2, c, dtype=torch.float64)
    parts = lambda t: t.view(2, 2, c, 4, 5)  # noqa: E731  (batch, part, channel, f, t)
    want = (torch.einsum("pqc,bqcft->bpcft", a, parts(x)) + torch.einsum("pqc,bqcft->bpcft", b, parts(y))
            + shift.view(1, 2, c, 1, 1)).reshape(2, 2 * c, 4, 5)
    _close(channel_mix([(a, x), (b, y)], shift), want, 1e-12)
    _close(channel_mix([(a, x)]), torch.einsum("pqc,bqcft->bpcft", a, parts(x)).reshape(2, 2 * c, 4, 5),
           1e-12)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("kernel,stride", [((7, 5), (2, 2)), ((5, 3), (2, 1)), ((1, 7), (1, 1))])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cin,cout", [(3, 4), (16, 32)])  # separate / grouped t1 and t2
def test_gauss_convolution_matches_stacked_convolution(transposed, kernel, stride, bias,
                                                      cin, cout, monkeypatch):
    monkeypatch.setattr(fastpaths, "GAUSS_MIN_MACS", 1)
    torch.manual_seed(3)
    layer = (ComplexConvTranspose2d if transposed else ComplexConv2d)(
        cin, cout, kernel, stride, (kernel[0] // 2, kernel[1] // 2), bias=bias).double()
    assert layer.uses_gauss(torch.zeros(1, 2 * cin, 1, 1))
    if bias:
        with torch.no_grad():
            layer.bias_re.normal_(), layer.bias_im.normal_()
    x = torch.randn(2, 2 * cin, 9, 7, dtype=torch.float64)
    out_pad = (stride[0] - 1, 0) if transposed else (0, 0)
    results = []
    for enabled in (True, False):
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        with fast_paths(enabled):
            y = layer.forward_stacked(xi, out_pad)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        results.append([y, xi.grad] + [p.grad.clone() for p in layer.parameters()])
    for fast, ref in zip(*results):
        _close(fast, ref, 1e-12)


def test_gauss_with_batch_norm_mix_matches_conv_then_affine(monkeypatch):
    torch.manual_seed(10)
    layer = ComplexConvTranspose2d(3, 4, (5, 3), (2, 1), (2, 1)).double()
    bn = _randomise_norms(ComplexBatchNorm2d(4).double()).eval()
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        want = bn(layer.forward_stacked(x, (1, 0)))
        monkeypatch.setattr(fastpaths, "GAUSS_MIN_MACS", 1)
        _close(layer.forward_stacked(x, (1, 0), mix=bn.affine()), want, 1e-12)
        monkeypatch.setattr(fastpaths, "GAUSS_MIN_MACS", 10 ** 9)
        _close(layer.forward_stacked(x, (1, 0), mix=bn.affine()), want, 1e-12)


def test_gauss_threshold_counts_multiply_adds_per_output():
    x = torch.zeros(1, 2, 1, 1)
    assert ComplexConv2d(64, 64, (5, 3)).uses_gauss(x)  # 64 * 15 = 960
    assert ComplexConv2d(32, 32, (7, 5)).uses_gauss(x)
    assert not ComplexConv2d(32, 32, (1, 7)).uses_gauss(x)  # 224: the elementwise work wins
    assert not ComplexConv2d(1, 32, (7, 5)).uses_gauss(x)
    assert not ComplexConvTranspose2d(64, 1, (7, 5)).uses_gauss(x)  # the mask layer
    with fast_paths(False):
        assert not ComplexConv2d(64, 64, (5, 3)).uses_gauss(x)


@pytest.mark.parametrize("out_channels", [1, 2, 4])
def test_transposed_convolution_with_few_outputs_matches_functional(out_channels):
    torch.manual_seed(4)
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, out_channels, 7, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)
    results = []
    for enabled in (True, False):
        with fast_paths(enabled):
            y = conv_transpose2d(x, w, b, (2, 2), (3, 2), (1, 0))
        grads = torch.autograd.grad(y.pow(2).sum(), (x, w, b))
        results.append((y, *grads))
    ref = F.conv_transpose2d(x, w, b, (2, 2), (3, 2), (1, 0))
    _close(results[0][0], ref, 1e-12)
    for fast, slow in zip(*results):
        _close(fast, slow, 1e-12)


@pytest.mark.parametrize("network,batch_norm", [("complex", "complex"), ("complex", "naive"),
                                                ("real", "complex")])
def test_training_step_matches_reference(network, batch_norm, gauss_threshold):
    torch.manual_seed(5)
    fast = dcu.DCUnet(MINI, network=network, batch_norm=batch_norm).double()
    ref = copy.deepcopy(fast)
    noisy = torch.randn(2, 3000, dtype=torch.float64) * 0.1
    clean = noisy * 0.6
    losses = []
    for model, enabled in ((fast, True), (ref, False)):
        with fast_paths(enabled):
            loss = wsdr_loss(noisy, clean, model(noisy))
            loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-12)
    for p1, p2 in zip(fast.parameters(), ref.parameters()):
        # atol: the gradients of conv biases followed by batch norm are 0 up to rounding
        _close(p1.grad, p2.grad, 1e-9, atol=1e-14)
    for b1, b2 in zip(fast.buffers(), ref.buffers()):
        _close(b1.double(), b2.double(), 1e-12)


@pytest.mark.parametrize("network,batch_norm", [("complex", "complex"), ("complex", "naive"),
                                                ("real", "naive")])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-4)])
def test_inference_with_folded_batch_norm_matches_reference(network, batch_norm, dtype, tol,
                                                             gauss_threshold):
    torch.manual_seed(6)
    model = _randomise_norms(dcu.DCUnet(MINI, network=network, batch_norm=batch_norm)).to(dtype).eval()
    wave = torch.randn(2, 4000, dtype=dtype) * 0.1
    with torch.inference_mode():
        with fast_paths(False):
            want = model(wave)
        got = model(wave)
        again = model(wave)  # from the cache
    _close(got, want, tol)
    assert torch.equal(got, again)
    with torch.no_grad():  # no_grad (not inference_mode) takes the same path
        _close(model(wave), want, tol)


def test_folded_weights_follow_weight_changes(gauss_threshold):
    torch.manual_seed(7)
    model = _randomise_norms(dcu.DCUnet(MINI)).double().eval()
    wave = torch.randn(1, 4000, dtype=torch.float64) * 0.1

    def both():
        with torch.inference_mode():
            fast = model(wave)
            with fast_paths(False):
                return fast, model(wave)

    first, _ = both()
    with torch.no_grad():  # an in-place update, as an optimiser step does
        model.encoders[2].conv.weight_re.mul_(1.5)
        model.encoders[2].norm.running_mean.add_(0.3)
    fast, ref = both()
    _close(fast, ref, 1e-11)
    assert (fast - first).abs().max() > 1e-6
    other = _randomise_norms(dcu.DCUnet(MINI), seed=9).double()
    model.load_state_dict(other.state_dict())  # copies into the same storage
    fast, ref = both()
    _close(fast, ref, 1e-11)
    model.float()  # new storage
    with torch.inference_mode():
        got = model(wave.float())
        with fast_paths(False):
            _close(got, model(wave.float()), 1e-4)


def test_fast_paths_leave_the_state_dict_unchanged():
    torch.manual_seed(8)
    model = dcu.DCUnet(MINI)
    keys = list(model.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.inference_mode():
        model(torch.randn(1, 4000))
    assert list(model.state_dict()) == keys
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    fresh = dcu.DCUnet(MINI)
    fresh.load_state_dict(model.state_dict())  # strict: nothing added, nothing missing


def test_shipped_checkpoint_gives_reference_output():
    try:
        model = dcu.load("dcunet10")
    except Exception as exc:  # pragma: no cover - only when the data folder is absent
        pytest.skip(f"shipped checkpoint unavailable: {exc}")
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.inference_mode():
        got = model(wave)
        with fast_paths(False):
            want = model(wave)
    _close(got, want, 1e-4)
