"""dcu.losses: the weighted-SDR loss as the paper defines it, plain SDR and spectral MSE."""

import numpy as np
import pytest
import torch

from dcu.losses import LOSSES, compute_loss, sdr_loss, spectral_mse, wsdr_loss


def numpy_wsdr(x, y, y_hat):
    """The paper's formula, written independently in float64 numpy for one utterance."""
    def loss_sdr(a, a_hat):
        return -np.dot(a, a_hat) / (np.linalg.norm(a) * np.linalg.norm(a_hat))
    z, z_hat = x - y, x - y_hat
    alpha = np.sum(y ** 2) / (np.sum(y ** 2) + np.sum(z ** 2))
    return alpha * loss_sdr(y, y_hat) + (1 - alpha) * loss_sdr(z, z_hat)


def triple(batch=4, n=3000, seed=0, dtype=torch.float64):
    """(noisy, clean, estimate): speech-like clean, noise at a few SNRs, a rough estimate."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=dtype) / 16000
    freq = 100 + 400 * torch.rand(batch, 1, generator=gen, dtype=dtype)
    envelope = 1 + torch.rand(batch, n, generator=gen, dtype=dtype)
    clean = torch.sin(2 * torch.pi * freq * t) * envelope
    level = torch.linspace(0.1, 2, batch, dtype=dtype)[:, None]
    noise = torch.randn(batch, n, generator=gen, dtype=dtype) * level
    estimate = clean + 0.3 * noise + 0.1 * torch.randn(batch, n, generator=gen, dtype=dtype)
    return clean + noise, clean, estimate


def test_perfect_estimate_gives_minus_one():
    x, y, _ = triple()
    assert wsdr_loss(x, y, y).item() == pytest.approx(-1.0, abs=1e-6)
    assert sdr_loss(y, y).item() == pytest.approx(-1.0, abs=1e-6)
    assert sdr_loss(y, -y).item() == pytest.approx(1.0, abs=1e-6)  # the other end of the range
    x32, y32 = x.float(), y.float()
    assert wsdr_loss(x32, y32, y32).item() == pytest.approx(-1.0, abs=1e-5)


def test_range_is_minus_one_to_one_on_random_input():
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        x, y, y_hat = torch.randn(3, 8, 500, generator=gen) * torch.rand(3, 8, 1, generator=gen)
        per_item = [wsdr_loss(x[i], y[i], y_hat[i]).item() for i in range(8)]
        assert all(-1 <= v <= 1 for v in per_item)
    x, y, _ = triple()  # item 0 has the highest SNR: a sign-flipped speech estimate is the worst
    assert wsdr_loss(x[0], y[0], -y[0]).item() > 0.9


def test_agrees_with_an_independent_numpy_reference():
    x, y, y_hat = triple(seed=2)
    ref = np.mean([numpy_wsdr(*(t[i].numpy() for t in (x, y, y_hat))) for i in range(x.shape[0])])
    assert wsdr_loss(x, y, y_hat).item() == pytest.approx(ref, abs=1e-9)
    per_item = [wsdr_loss(x[i], y[i], y_hat[i]).item() for i in range(x.shape[0])]
    assert np.mean(per_item) == pytest.approx(ref, abs=1e-9)  # the batch loss is the item mean
    assert len(set(np.round(per_item, 6))) == len(per_item)  # items really differ


@pytest.mark.parametrize("scale", [1e-2, 0.5, 7.0, 1e3])
def test_invariant_to_scaling_noisy_clean_and_estimate_together(scale):
    # exact up to the 1e-8 guard added to the norms: ~1e-8 relative at the smallest scale here
    x, y, y_hat = triple(seed=3)
    base = wsdr_loss(x, y, y_hat)
    scaled = wsdr_loss(scale * x, scale * y, scale * y_hat)
    assert scaled.item() == pytest.approx(base.item(), abs=1e-7)


def test_sdr_is_invariant_to_scaling_the_estimate():
    _, y, y_hat = triple(seed=4)
    base = sdr_loss(y, y_hat).item()
    for scale in (1e-2, 0.3, 12.0):
        assert sdr_loss(y, scale * y_hat).item() == pytest.approx(base, abs=1e-9)
    # wSDR is not: its noise term sees x - y_hat, which changes when only y_hat is scaled
    x, y, y_hat = triple(seed=4)
    assert abs(wsdr_loss(x, y, 0.5 * y_hat).item() - wsdr_loss(x, y, y_hat).item()) > 1e-3


def test_leaving_the_noise_in_is_worse_than_the_clean_estimate():
    x, y, y_hat = triple(seed=5)
    noisy_as_estimate = wsdr_loss(x, y, x).item()
    assert noisy_as_estimate > wsdr_loss(x, y, y_hat).item() > wsdr_loss(x, y, y).item()
    for i in range(x.shape[0]):  # per utterance, at every SNR of the batch
        assert wsdr_loss(x[i], y[i], x[i]) > wsdr_loss(x[i], y[i], y[i]) + 0.01


def test_one_dimensional_input_is_a_batch_of_one():
    x, y, y_hat = triple(batch=1, seed=6)
    assert wsdr_loss(x[0], y[0], y_hat[0]).item() == pytest.approx(wsdr_loss(x, y, y_hat).item())
    assert sdr_loss(y[0], y_hat[0]).dim() == 0


def test_gradient_is_finite_even_for_a_silent_estimate():
    x, y, _ = triple(seed=7, dtype=torch.float32)
    est = torch.zeros_like(y, requires_grad=True)
    loss = wsdr_loss(x, y, est)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(est.grad).all()


def test_spectral_mse():
    _, y, y_hat = triple(seed=8, dtype=torch.float32)
    assert spectral_mse(y, y).item() == 0.0
    base = spectral_mse(y, y_hat).item()
    assert base > 0
    assert spectral_mse(3 * y, 3 * y_hat).item() == pytest.approx(9 * base, rel=1e-4)  # quadratic
    assert spectral_mse(y_hat, y).item() == pytest.approx(base, rel=1e-6)  # symmetric


def test_compute_loss_dispatches_by_name():
    x, y, y_hat = triple(seed=9, dtype=torch.float32)
    assert torch.equal(compute_loss("wSDR", x, y, y_hat), wsdr_loss(x, y, y_hat))
    assert torch.equal(compute_loss("SDR", x, y, y_hat), sdr_loss(y, y_hat))
    assert torch.equal(compute_loss("MSE", x, y, y_hat), spectral_mse(y, y_hat))
    assert set(LOSSES) == {"wSDR", "SDR", "MSE"}
    with pytest.raises(ValueError, match="unknown loss 'L1'; choose one of wSDR, SDR, MSE"):
        compute_loss("L1", x, y, y_hat)


def test_bad_shapes_error_clearly():
    a = torch.zeros(2, 1000)
    with pytest.raises(ValueError,
                       match=r"same shape, got \[\(2, 1000\), \(2, 1000\), \(2, 999\)\]"):
        wsdr_loss(a, a, torch.zeros(2, 999))
    with pytest.raises(ValueError, match="same shape"):
        sdr_loss(a, torch.zeros(1000))
    with pytest.raises(ValueError, match=r"\(batch, time\) or \(time,\), got shape \(2, 1, 1000\)"):
        spectral_mse(a[:, None], a[:, None])
    with pytest.raises(ValueError, match="got shape"):
        sdr_loss(torch.tensor(1.0), torch.tensor(1.0))
