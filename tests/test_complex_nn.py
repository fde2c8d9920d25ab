"""dcu.complex_nn: complex convolutions against complex arithmetic, batch norms, gradients."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dcu.complex_nn import (BATCH_NORMS, ComplexBatchNorm2d, ComplexConv2d,
                            ComplexConvTranspose2d, ComplexLeakyReLU, NaiveComplexBatchNorm2d,
                            from_stacked, to_stacked)


def crandn(*shape, gen, dtype=torch.complex128):
    return torch.complex(torch.randn(*shape, generator=gen, dtype=torch.float64),
                         torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype)


def complex_weight(conv):
    w = torch.complex(conv.weight_re.double(), conv.weight_im.double())
    b = torch.complex(conv.bias_re.double(), conv.bias_im.double())
    return w, b


def direct_conv(x, w, b, stride, padding):
    """Complex convolution from its definition: sum over kernel taps of W[o, c, i, j] x[c, ...]."""
    (sf, st), (pf, pt) = stride, padding
    kf, kt = w.shape[-2:]
    xp = F.pad(x, (pt, pt, pf, pf))
    out_f = (xp.shape[-2] - kf) // sf + 1
    out_t = (xp.shape[-1] - kt) // st + 1
    out = torch.zeros(x.shape[0], w.shape[0], out_f, out_t, dtype=x.dtype)
    for i in range(kf):
        for j in range(kt):
            patch = xp[:, :, i: i + sf * (out_f - 1) + 1: sf, j: j + st * (out_t - 1) + 1: st]
            out += torch.einsum("bcft,oc->boft", patch, w[:, :, i, j])
    return out + b.view(1, -1, 1, 1)


def direct_conv_transpose(x, w, b, stride, padding, output_padding):
    """Complex transposed convolution from its definition: every input sample scatters
    ``x[c] * W[c, o, i, j]`` to output position ``(f * stride + i - padding, ...)``."""
    (sf, st), (pf, pt), (of, ot) = stride, padding, output_padding
    kf, kt = w.shape[-2:]
    nf, nt = x.shape[-2:]
    full_f, full_t = (nf - 1) * sf + kf + of, (nt - 1) * st + kt + ot
    full = torch.zeros(x.shape[0], w.shape[1], full_f, full_t, dtype=x.dtype)
    for i in range(kf):
        for j in range(kt):
            full[:, :, i: i + sf * (nf - 1) + 1: sf, j: j + st * (nt - 1) + 1: st] += \
                torch.einsum("bcft,co->boft", x, w[:, :, i, j])
    out = full[:, :, pf: full_f - pf, pt: full_t - pt]
    return out + b.view(1, -1, 1, 1)


def random_layer_cases(n, seed):
    gen = torch.Generator().manual_seed(seed)
    pick = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=gen))  # noqa: E731
    cases = []
    for _ in range(n):
        kernel = (pick(1, 5), pick(1, 5))
        stride = (pick(1, 3), pick(1, 2))
        padding = (pick(0, kernel[0] // 2), pick(0, kernel[1] // 2))
        cases.append((pick(1, 3), pick(1, 4), kernel, stride, padding))
    return cases


def randomise_(module, gen):
    """Standard-normal values for every parameter of ``module``."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("cin,cout,kernel,stride,padding", random_layer_cases(8, seed=1))
def test_conv_matches_complex_arithmetic(cin, cout, kernel, stride, padding):
    gen = torch.Generator().manual_seed(hash((cin, cout, kernel, stride)) % 2**31)
    conv = ComplexConv2d(cin, cout, kernel, stride, padding)
    randomise_(conv, gen)
    x = crandn(2, cin, 11, 9, gen=gen)
    w, b = complex_weight(conv)
    ref = direct_conv(x, w, b, conv.stride, conv.padding)
    # torch's own complex convolution agrees with the definition (a second reference)
    torch.testing.assert_close(F.conv2d(x, w, b, conv.stride, conv.padding), ref)
    out = conv.double()(x)
    assert out.dtype == torch.complex128 and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    out32 = conv.float()(x.to(torch.complex64))
    assert out32.dtype == torch.complex64
    torch.testing.assert_close(out32.to(torch.complex128), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cin,cout,kernel,stride,padding", random_layer_cases(8, seed=2))
def test_conv_transpose_matches_complex_arithmetic(cin, cout, kernel, stride, padding):
    gen = torch.Generator().manual_seed(hash((cin, cout, kernel, stride, 7)) % 2**31)
    output_padding = tuple(s - 1 for s in stride)  # the largest legal value
    conv = ComplexConvTranspose2d(cin, cout, kernel, stride, padding, output_padding)
    assert conv.weight_re.shape == (cin, cout, *kernel)  # torch's transposed layout
    randomise_(conv, gen)
    x = crandn(2, cin, 6, 5, gen=gen)
    w, b = complex_weight(conv)
    ref = direct_conv_transpose(x, w, b, conv.stride, conv.padding, output_padding)
    torch.testing.assert_close(
        F.conv_transpose2d(x, w, b, conv.stride, conv.padding, output_padding), ref)
    out = conv.double()(x)
    assert out.dtype == torch.complex128 and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    # output_size picks the same output as the output padding
    plain = ComplexConvTranspose2d(cin, cout, kernel, stride, padding).double()
    plain.load_state_dict(conv.state_dict())
    torch.testing.assert_close(plain(x, output_size=ref.shape[-2:]), ref, rtol=1e-10, atol=1e-10)


def test_conv_without_bias_and_the_papers_formula():
    """(A + iB) * (x + iy) = (A*x - B*y) + i(B*x + A*y), written with four real convolutions."""
    gen = torch.Generator().manual_seed(3)
    conv = ComplexConv2d(2, 3, (5, 3), (2, 1), (2, 1), bias=False).double()
    assert conv.bias_re is None
    z = crandn(1, 2, 9, 7, gen=gen)
    x, y, a, b = z.real, z.imag, conv.weight_re, conv.weight_im
    c = lambda inp, k: F.conv2d(inp, k, None, (2, 1), (2, 1))  # noqa: E731
    ref = torch.complex(c(x, a) - c(y, b), c(x, b) + c(y, a))
    torch.testing.assert_close(conv(z), ref)


def test_stacked_layout_round_trip_and_shape_errors():
    gen = torch.Generator().manual_seed(4)
    z = crandn(2, 3, 4, 5, gen=gen, dtype=torch.complex64)
    s = to_stacked(z)
    assert s.shape == (2, 6, 4, 5)
    assert torch.equal(s[:, :3], z.real) and torch.equal(s[:, 3:], z.imag)
    assert torch.equal(from_stacked(s), z)
    conv = ComplexConv2d(3, 2, 3)
    with pytest.raises(ValueError, match=r"ComplexConv2d expects \(batch, 3, freq, frames\)"):
        conv(crandn(2, 4, 6, 6, gen=gen, dtype=torch.complex64))
    with pytest.raises(ValueError, match="complex input, got shape"):
        conv(torch.zeros(2, 6, 6, 6))  # the reference layers take complex tensors only
    with pytest.raises(ValueError, match="ComplexBatchNorm2d"):
        ComplexBatchNorm2d(3)(torch.zeros(2, 3, 4, dtype=torch.complex64))
    transposed = ComplexConvTranspose2d(3, 2, 3, stride=2)
    with pytest.raises(ValueError, match="cannot be reached"):
        transposed(crandn(1, 3, 4, 4, gen=gen, dtype=torch.complex64), output_size=(20, 20))


def test_conv_init_scale_is_complex_glorot():
    conv = ComplexConv2d(16, 16, (5, 3))
    fan_in = 16 * 15
    bound = math.sqrt(3 / (2 * fan_in))
    for p in (conv.weight_re, conv.weight_im):
        assert p.abs().max() <= bound and p.std() > 0.5 * bound / math.sqrt(3)
    assert torch.equal(conv.bias_re, torch.zeros(16))


def correlated_batch(gen, channels=3, dtype=torch.float64):
    """Complex input whose real and imaginary parts are strongly correlated, per channel
    with a different mean and scale."""
    a = torch.randn(16, channels, 6, 5, generator=gen, dtype=dtype)
    e = torch.randn(16, channels, 6, 5, generator=gen, dtype=dtype)
    scale = torch.tensor([0.5, 3.0, 10.0], dtype=dtype)[:channels].view(1, -1, 1, 1)
    re = scale * a + 2.0
    im = scale * (0.95 * a + 0.1 * e) - 1.0
    return torch.complex(re, im)


def identity_gamma_(bn):
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([[1.0], [0.0], [1.0]]).expand_as(bn.weight))
        bn.bias.zero_()
    return bn


def test_complex_bn_whitens_its_training_batch():
    gen = torch.Generator().manual_seed(5)
    z = correlated_batch(gen)
    parts = torch.stack([z.real, z.imag], dim=-1).transpose(0, 1).reshape(3, -1, 2)
    corr = [torch.corrcoef(p.T)[0, 1] for p in parts]
    assert min(corr) > 0.95  # the test input really is correlated
    for eps, tol in [(1e-12, 1e-6), (1e-5, 1e-2)]:  # eps regularises a near-singular covariance
        bn = identity_gamma_(ComplexBatchNorm2d(3, eps=eps).double().train())
        out = bn(z)
        assert out.dtype == torch.complex128 and out.shape == z.shape
        o = torch.stack([out.real, out.imag], dim=-1).transpose(0, 1).reshape(3, -1, 2)
        for c in range(3):
            mean = o[c].mean(0)
            cov = (o[c] - mean).T @ (o[c] - mean) / o[c].shape[0]
            torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-10, rtol=0)
            torch.testing.assert_close(cov, torch.eye(2, dtype=torch.float64), atol=tol, rtol=0)
    # the per-part variant only rescales each part: the correlation stays
    naive = NaiveComplexBatchNorm2d(3).double().train()(z)
    pair = torch.stack([naive.real[:, 0].flatten(), naive.imag[:, 0].flatten()])
    assert torch.corrcoef(pair)[0, 1] > 0.95


def test_complex_bn_default_gamma_and_beta_apply_the_learned_affine_map():
    gen = torch.Generator().manual_seed(6)
    z = correlated_batch(gen)
    bn = ComplexBatchNorm2d(3).double()
    torch.testing.assert_close(bn.weight[:, 0], torch.tensor([2 ** -0.5, 0, 2 ** -0.5],
                                                             dtype=torch.float64))
    white = identity_gamma_(ComplexBatchNorm2d(3).double())(z)
    randomise_(bn, gen)
    out = bn(z)
    g, beta = bn.weight.detach(), bn.bias.detach()
    v = lambda t: t.view(1, -1, 1, 1)  # noqa: E731
    ref_re = v(g[0]) * white.real + v(g[1]) * white.imag + v(beta[0])
    ref_im = v(g[1]) * white.real + v(g[2]) * white.imag + v(beta[1])
    torch.testing.assert_close(out, torch.complex(ref_re, ref_im))


def test_complex_bn_tracks_unbiased_running_stats():
    gen = torch.Generator().manual_seed(7)
    z = correlated_batch(gen)
    bn = ComplexBatchNorm2d(3, momentum=1.0).double().train()
    bn(z)
    assert int(bn.num_batches_tracked) == 1
    for c in range(3):
        pts = torch.stack([z.real[:, c].flatten(), z.imag[:, c].flatten()])
        cov = torch.cov(pts)  # unbiased, like nn.BatchNorm2d's running_var
        torch.testing.assert_close(bn.running_mean[:, c], pts.mean(1))
        torch.testing.assert_close(bn.running_covar[:, c],
                                   torch.stack([cov[0, 0], cov[0, 1], cov[1, 1]]))


def test_complex_bn_eval_uses_running_stats():
    gen = torch.Generator().manual_seed(8)
    bn = ComplexBatchNorm2d(3).double().train()
    randomise_(bn, gen)
    for _ in range(5):
        bn(correlated_batch(gen))
    z = correlated_batch(gen) * 1.5 + 0.3j
    bn.eval()
    out = bn(z)
    torch.testing.assert_close(bn(z), out)  # eval does not update anything
    # reference: whiten with V^-1/2 of the running covariance (by eigendecomposition)
    eps = bn.eps
    ref = []
    for c in range(3):
        vrr, vri, vii = bn.running_covar[:, c]
        v = torch.stack([torch.stack([vrr + eps, vri]), torch.stack([vri, vii + eps])])
        evals, evecs = torch.linalg.eigh(v)
        inv_sqrt = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
        centred = torch.stack([z.real[:, c] - bn.running_mean[0, c],
                               z.imag[:, c] - bn.running_mean[1, c]], dim=-1)
        white = centred @ inv_sqrt.T
        g = bn.weight[:, c].detach()
        gamma = torch.stack([torch.stack([g[0], g[1]]), torch.stack([g[1], g[2]])])
        y = white @ gamma.T + bn.bias[:, c].detach()
        ref.append(torch.complex(y[..., 0], y[..., 1]))
    torch.testing.assert_close(out, torch.stack(ref, dim=1))
    before = bn.running_mean.clone()
    bn.train()
    assert (bn(z) - out).abs().max() > 0.1  # train mode uses the batch's own statistics
    assert not torch.equal(bn.running_mean, before)


def test_naive_bn_equals_batchnorm_on_stacked_channels():
    gen = torch.Generator().manual_seed(9)
    naive = NaiveComplexBatchNorm2d(3, momentum=0.3)
    ref = nn.BatchNorm2d(6, momentum=0.3)
    randomise_(naive, gen)
    ref.load_state_dict(naive.bn.state_dict())
    for _ in range(3):
        z = correlated_batch(gen, dtype=torch.float32)
        torch.testing.assert_close(naive(z), from_stacked(ref(to_stacked(z))))
    naive.eval()
    ref.eval()
    z = correlated_batch(gen, dtype=torch.float32)
    torch.testing.assert_close(naive(z), from_stacked(ref(to_stacked(z))))
    assert set(BATCH_NORMS) == {"complex", "naive"}


def test_leaky_relu_acts_on_each_part():
    gen = torch.Generator().manual_seed(10)
    z = crandn(2, 3, 4, 5, gen=gen, dtype=torch.complex64)
    act = ComplexLeakyReLU(0.2)
    out = act(z)
    torch.testing.assert_close(out.real, torch.where(z.real > 0, z.real, 0.2 * z.real))
    torch.testing.assert_close(out.imag, torch.where(z.imag > 0, z.imag, 0.2 * z.imag))


# -- gradients in double precision ----------------------------------------------------------

def gradcheck_module(module, x):
    """gradcheck with respect to the input AND every parameter of ``module``."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]

    def f(inp, *ps):
        return functional_call(module, dict(zip(names, ps)), (inp,))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(True), *params), eps=1e-6, atol=1e-5,
                                    fast_mode=True)


def test_gradcheck_conv():
    gen = torch.Generator().manual_seed(11)
    x = crandn(2, 2, 7, 6, gen=gen)
    gradcheck_module(ComplexConv2d(2, 3, (3, 2), (2, 1), (1, 1)).double(), x)


def test_gradcheck_conv_transpose():
    gen = torch.Generator().manual_seed(12)
    x = crandn(2, 2, 4, 3, gen=gen)
    gradcheck_module(ComplexConvTranspose2d(2, 3, (3, 3), (2, 2), (1, 1), (1, 0)).double(), x)


def test_gradcheck_complex_batch_norm_train_mode():
    gen = torch.Generator().manual_seed(13)
    bn = ComplexBatchNorm2d(2).double().train()
    randomise_(bn, gen)
    gradcheck_module(bn, correlated_batch(gen, channels=2)[:3, :, :3, :3])


def test_gradcheck_naive_batch_norm_and_leaky_relu():
    gen = torch.Generator().manual_seed(14)
    z = correlated_batch(gen, channels=2)[:3, :, :3, :3]
    gradcheck_module(NaiveComplexBatchNorm2d(2).double().train(), z)
    # keep samples away from the kink at 0, where the derivative is undefined
    x = crandn(2, 2, 3, 3, gen=gen)
    x = torch.complex(x.real + 0.1 * x.real.sign(), x.imag + 0.1 * x.imag.sign())
    assert torch.autograd.gradcheck(ComplexLeakyReLU(0.1), (x.detach().requires_grad_(True),),
                                    fast_mode=True)
