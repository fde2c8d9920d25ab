"""dcu.engine computes what the reference modules compute, outputs and gradients.

The engine (dcu.engine.optimize): stacked real tensors, complex convolution as one real
convolution or Gauss's three, complex batch norm as one autograd function, PyTorch's GEMM kernel
for transposed convolutions with few output channels, batch norm folded into the convolution at
inference, channels-last inference, in-place activations, and bfloat16 autocast. Each is compared
with the reference code (dcu.complex_nn, dcu.unet) on the same weights and inputs, in float64
(agreement to ~1e-12) and float32; bfloat16 against float32 within bfloat16's rounding.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import dcu
from dcu import engine
from dcu.architectures import Architecture
from dcu.complex_nn import (ComplexBatchNorm2d, ComplexConv2d, ComplexConvTranspose2d,
                            from_stacked, to_stacked)
from dcu.engine import kernels
from dcu.engine.kernels import channel_mix, conv_transpose2d, gauss_pays
from dcu.engine.layers import complex_bn_affine
from dcu.losses import wsdr_loss


def fast_copy(module, precision="fp32"):
    """An engine copy of ``module`` (the original stays the reference)."""
    return engine.optimize(copy.deepcopy(module), precision)


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
        monkeypatch.setattr(kernels, "GAUSS_MIN_MACS", 1)
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


def test_optimize_switches_classes_in_place_and_reference_switches_back():
    model = dcu.DCUnet(MINI)
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    assert not engine.is_optimized(model)
    assert engine.optimize(model, "bf16") is model and engine.is_optimized(model)
    assert type(model).__name__ == "FastDCUnet" and model.precision == "bf16"
    assert isinstance(model, dcu.DCUnet) and isinstance(model.encoders[0].conv, ComplexConv2d)
    engine.optimize(model, "fp32")  # again: only the precision changes
    assert model.precision == "fp32"
    engine.reference(model)
    assert type(model) is dcu.DCUnet and not engine.is_optimized(model)
    assert all(type(m).__module__ != "dcu.engine.layers" for m in model.modules())
    assert all(torch.equal(keys[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        engine.optimize(model, "fp16")


def test_precision_resolution():
    native = engine.bf16_native("cpu")
    assert engine.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert engine.resolve_precision("fp32") == "fp32" and engine.resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="choose one of auto, fp32, bf16"):
        engine.resolve_precision("half")
    with engine.autocast("fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with engine.autocast("bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_complex_batch_norm_training_matches_reference(layout, dtype, tol):
    torch.manual_seed(0)
    ref = _randomise_norms(ComplexBatchNorm2d(5).to(dtype))
    fast = fast_copy(ref)
    x = torch.randn(3, 10, 7, 6, dtype=dtype) * 2 + 0.5
    x[:, 5:] += 0.7 * x[:, :5]  # correlated real and imaginary parts: whitening matters
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    xf, xr = x.clone().requires_grad_(), from_stacked(x).detach().requires_grad_()
    yf, yr = fast(xf), to_stacked(ref(xr))
    (yf * grad).sum().backward()
    (yr * grad).sum().backward()
    assert yf.dtype == x.dtype
    _close(yf, yr, tol)
    _close(xf.grad, to_stacked(xr.grad), tol)
    for name in ("weight", "bias"):
        _close(getattr(fast, name).grad, getattr(ref, name).grad, tol)
    _close(fast.running_mean, ref.running_mean, tol)
    _close(fast.running_covar, ref.running_covar, tol)
    assert fast.num_batches_tracked.item() == ref.num_batches_tracked.item() == 1


def test_complex_batch_norm_eval_matches_reference_with_and_without_autograd():
    torch.manual_seed(1)
    ref = _randomise_norms(ComplexBatchNorm2d(4).double()).eval()
    fast = fast_copy(ref)
    x = torch.randn(2, 8, 5, 3, dtype=torch.float64)
    want = to_stacked(ref(from_stacked(x)))
    with torch.no_grad():
        _close(fast(x), want, 1e-12)  # the per-channel affine map
    xg = x.clone().requires_grad_()
    y = fast(xg)  # eval with autograd on: still differentiable
    y.sum().backward()
    _close(y, want, 1e-12)
    assert xg.grad is not None and fast.weight.grad is not None


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
@pytest.mark.parametrize("gauss", [True, False])
def test_fast_convolution_matches_reference(transposed, kernel, stride, bias, cin, cout, gauss,
                                            monkeypatch):
    monkeypatch.setattr(kernels, "GAUSS_MIN_MACS", 1 if gauss else 10 ** 9)
    torch.manual_seed(3)
    ref = (ComplexConvTranspose2d if transposed else ComplexConv2d)(
        cin, cout, kernel, stride, (kernel[0] // 2, kernel[1] // 2), bias=bias).double()
    fast = fast_copy(ref)
    assert gauss_pays(torch.zeros(1, 2 * cin, 1, 1), cin, cout, kernel) == gauss
    if bias:
        with torch.no_grad():
            ref.bias_re.normal_(), ref.bias_im.normal_()
            fast.load_state_dict(ref.state_dict())
    x = torch.randn(2, 2 * cin, 9, 7, dtype=torch.float64)
    size = [(n - 1) * s - 2 * (k // 2) + k + (s - 1) for n, s, k in zip(x.shape[-2:], stride, kernel)]
    results = []
    for layer, inp in ((fast, x), (ref, from_stacked(x))):
        xi = inp.clone().requires_grad_()
        y = layer(xi, output_size=size) if transposed else layer(xi)
        y = y if layer is fast else to_stacked(y)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        g = xi.grad if layer is fast else to_stacked(xi.grad)
        results.append([y, g] + [p.grad.clone() for p in layer.parameters()])
    for got, want in zip(*results):
        _close(got, want, 1e-12)


def test_gauss_with_batch_norm_mix_matches_conv_then_affine(monkeypatch):
    torch.manual_seed(10)
    layer = fast_copy(ComplexConvTranspose2d(3, 4, (5, 3), (2, 1), (2, 1)).double())
    bn = fast_copy(_randomise_norms(ComplexBatchNorm2d(4).double()).eval())
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64)
    size = (18, 7)
    with torch.no_grad():
        want = bn(layer(x, size))
        monkeypatch.setattr(kernels, "GAUSS_MIN_MACS", 1)
        _close(layer(x, size, mix=complex_bn_affine(bn)), want, 1e-12)
        monkeypatch.setattr(kernels, "GAUSS_MIN_MACS", 10 ** 9)
        _close(layer(x, size, mix=complex_bn_affine(bn)), want, 1e-12)


def test_gauss_threshold_counts_multiply_adds_per_output():
    x = torch.zeros(1, 2, 1, 1)
    assert gauss_pays(x, 64, 64, (5, 3))  # 64 * 15 = 960
    assert gauss_pays(x, 32, 32, (7, 5))
    assert not gauss_pays(x, 32, 32, (1, 7))  # 224: the elementwise work wins
    assert not gauss_pays(x, 1, 32, (7, 5))
    assert not gauss_pays(x, 64, 1, (7, 5))  # the mask layer
    with engine.autocast("bf16"):  # bfloat16 kernels: one stacked convolution is faster
        assert not gauss_pays(x, 64, 64, (5, 3))


@pytest.mark.parametrize("out_channels", [1, 2, 4])
def test_transposed_convolution_with_few_outputs_matches_functional(out_channels):
    torch.manual_seed(4)
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, out_channels, 7, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)
    results = []
    for conv in (conv_transpose2d, F.conv_transpose2d):
        y = conv(x, w, b, (2, 2), (3, 2), (1, 0))
        grads = torch.autograd.grad(y.pow(2).sum(), (x, w, b))
        results.append((y, *grads))
    for fast, slow in zip(*results):
        _close(fast, slow, 1e-12)


@pytest.mark.parametrize("network,batch_norm", [("complex", "complex"), ("complex", "naive"),
                                                ("real", "complex")])
@pytest.mark.parametrize("causal", [False, True])
def test_training_step_matches_reference(network, batch_norm, causal, gauss_threshold):
    torch.manual_seed(5)
    ref = dcu.DCUnet(MINI, network=network, batch_norm=batch_norm, causal=causal).double()
    fast = fast_copy(ref)
    noisy = torch.randn(2, 3000, dtype=torch.float64) * 0.1
    clean = noisy * 0.6
    losses = []
    for model in (fast, ref):
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
@pytest.mark.parametrize("causal", [False, True])
def test_inference_with_folded_batch_norm_matches_reference(network, batch_norm, dtype, tol,
                                                             causal, gauss_threshold):
    torch.manual_seed(6)
    ref = _randomise_norms(dcu.DCUnet(MINI, network=network, batch_norm=batch_norm,
                                      causal=causal)).to(dtype).eval()
    fast = fast_copy(ref)
    wave = torch.randn(2, 4000, dtype=dtype) * 0.1
    with torch.inference_mode():
        want = ref(wave)
        got = fast(wave)
        again = fast(wave)  # from the cache
    _close(got, want, tol)
    assert torch.equal(got, again)
    with torch.no_grad():  # no_grad (not inference_mode) takes the same path
        _close(fast(wave), want, tol)
    spec = torch.randn(1, 513, 17, dtype=torch.complex128 if dtype == torch.float64 else torch.complex64)
    with torch.no_grad():  # estimate_mask works on the engine too (complex in, complex out)
        _close(torch.view_as_real(fast.estimate_mask(spec)),
               torch.view_as_real(ref.estimate_mask(spec)), tol)


def test_folded_weights_follow_weight_changes(gauss_threshold):
    torch.manual_seed(7)
    ref = _randomise_norms(dcu.DCUnet(MINI)).double().eval()
    model = fast_copy(ref)
    wave = torch.randn(1, 4000, dtype=torch.float64) * 0.1

    def both():
        ref.load_state_dict(model.state_dict())
        with torch.inference_mode():
            return model(wave), ref(wave)

    first, _ = both()
    with torch.no_grad():  # an in-place update, as an optimiser step does
        model.encoders[2].conv.weight_re.mul_(1.5)
        model.encoders[2].norm.running_mean.add_(0.3)
    fast, want = both()
    _close(fast, want, 1e-11)
    assert (fast - first).abs().max() > 1e-6
    other = _randomise_norms(dcu.DCUnet(MINI), seed=9).double()
    model.load_state_dict(other.state_dict())  # copies into the same storage
    fast, want = both()
    _close(fast, want, 1e-11)
    model.float()  # new storage
    ref.float()
    ref.load_state_dict(model.state_dict())
    with torch.inference_mode():
        _close(model(wave.float()), ref(wave.float()), 1e-4)


def test_engine_leaves_the_state_dict_unchanged():
    torch.manual_seed(8)
    model = fast_copy(dcu.DCUnet(MINI))
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
    ref = dcu.load("dcunet10")
    assert type(ref) is dcu.DCUnet and not engine.is_optimized(ref)  # dcu.load: the reference
    model = engine.optimize(dcu.load("dcunet10"))
    assert engine.is_optimized(model)
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.inference_mode():
        _close(model(wave), ref(wave), 1e-4)


# -- bfloat16 ---------------------------------------------------------------------------------

def _si_sdr_db(estimate, reference):
    alpha = (estimate * reference).sum() / (reference * reference).sum()
    target = alpha * reference
    return 10 * torch.log10(target.pow(2).sum() / (estimate - target).pow(2).sum()).item()


def test_bf16_inference_of_a_shipped_model_stays_close_to_float32():
    model = dcu.load("dcunet10")
    wave = torch.randn(2, 32000, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.inference_mode():
        want = model(wave)
        engine.optimize(model, "bf16")
        got = model(wave)
    assert got.dtype == torch.float32  # the mask, the iSTFT and the output stay float32
    assert _si_sdr_db(got, want) > 30  # bf16 rounding leaves the output ~1/1000 off or better
    assert _si_sdr_db(got, want) < 120  # and it really ran in bfloat16


def test_bf16_training_keeps_statistics_masks_and_weights_in_float32():
    torch.manual_seed(11)
    ref = dcu.DCUnet(MINI)
    fp32, bf16 = fast_copy(ref, "fp32"), fast_copy(ref, "bf16")
    noisy = torch.randn(4, 8000) * 0.1
    clean = noisy * 0.6
    grads = []
    for model in (fp32, bf16):
        spec_out = {}
        model.encoders[1].conv.register_forward_hook(lambda m, i, o: spec_out.setdefault("o", o))
        loss = wsdr_loss(noisy, clean, model(noisy))
        assert loss.dtype == torch.float32
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        if model is bf16:
            assert spec_out["o"].dtype == torch.bfloat16  # the convolutions ran in bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert all(b.dtype in (torch.float32, torch.long) for b in bf16.buffers())
    # the batch-norm statistics are computed in float32 from bf16 convolution outputs
    for b32, b16 in zip(fp32.buffers(), bf16.buffers()):
        if b32.is_floating_point():
            _close(b16, b32, 0.05, atol=1e-3)
    cosine = F.cosine_similarity(grads[0], grads[1], dim=0).item()
    assert torch.isfinite(grads[1]).all() and cosine > 0.99
