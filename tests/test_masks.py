"""dcu.masks: the ranges and phases of the UBD, BDSS and BDT masks."""

import math

import pytest
import torch

from dcu.masks import MASKS, apply_mask, compute_mask, compute_mask_parts


def random_output(n=4000, max_mag=5.0, seed=0):
    """Complex numbers with magnitudes in (0, max_mag] and phases all around the circle."""
    gen = torch.Generator().manual_seed(seed)
    mag = torch.rand(n, generator=gen) * max_mag + 1e-3
    phase = (torch.rand(n, generator=gen) * 2 - 1) * math.pi
    return torch.polar(mag, phase)


def angle_difference(a, b):
    """Signed difference of two angles wrapped into (-pi, pi]."""
    return torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi


def test_bdt_magnitude_below_one_and_phase_kept():
    o = random_output()
    m = compute_mask(o, "BDT")
    assert m.dtype == o.dtype and m.shape == o.shape
    assert (m.abs() < 1).all() and (m.abs() > 0).all()
    torch.testing.assert_close(m.abs(), torch.tanh(o.abs()))
    assert angle_difference(m.angle(), o.angle()).abs().max() < 1e-5  # phase unchanged
    # saturates towards 1 for large |O| and never exceeds it
    big = compute_mask(torch.polar(torch.full((8,), 50.0), torch.linspace(-3, 3, 8)), "BDT")
    assert (big.abs() <= 1).all() and (big.abs() > 0.999).all()


def test_bdt_reaches_any_phase_bdss_does_not():
    target = torch.linspace(-math.pi + 0.01, math.pi, 73)  # every 5 degrees around the circle
    o = torch.polar(torch.full_like(target, 2.0), target)
    assert angle_difference(compute_mask(o, "BDT").angle(), target).abs().max() < 1e-5
    bdss = compute_mask(random_output(), "BDSS").angle()
    assert (bdss > 0).all() and (bdss < math.pi / 2).all()  # first quadrant only


def test_bdss_lies_inside_the_unit_square():
    o = random_output(max_mag=8.0)
    m = compute_mask(o, "BDSS")
    for part in (m.real, m.imag):
        assert (part > 0).all() and (part < 1).all()
    torch.testing.assert_close(m.real, torch.sigmoid(o.real))
    torch.testing.assert_close(m.imag, torch.sigmoid(o.imag))
    zero = compute_mask(torch.zeros(3, dtype=torch.complex64), "BDSS")
    torch.testing.assert_close(zero, torch.full((3,), 0.5 + 0.5j))


def test_ubd_is_the_identity():
    o = random_output(max_mag=30.0)
    assert torch.equal(compute_mask(o, "UBD"), o)


@pytest.mark.parametrize("kind", MASKS)
def test_compute_mask_equals_compute_mask_parts(kind):
    o = random_output(seed=1).reshape(2, 50, 40)
    re, im = compute_mask_parts(o.real, o.imag, kind)
    m = compute_mask(o, kind)
    assert re.shape == o.shape and not re.is_complex()
    torch.testing.assert_close(torch.complex(re, im), m)


@pytest.mark.parametrize("kind", MASKS)
def test_apply_mask_multiplies_the_noisy_spectrogram(kind):
    o, x = random_output(seed=2), random_output(seed=3)
    torch.testing.assert_close(apply_mask(x, o, kind), compute_mask(o, kind) * x)


def test_bdt_is_finite_with_finite_gradient_at_zero():
    o = torch.zeros(4, dtype=torch.complex64, requires_grad=True)
    m = compute_mask(o, "BDT")
    assert torch.equal(m.detach(), torch.zeros(4, dtype=torch.complex64))
    m.abs().sum().backward()
    assert torch.isfinite(torch.view_as_real(o.grad)).all()
    re = torch.zeros(3, requires_grad=True)
    im = torch.zeros(3, requires_grad=True)
    r, i = compute_mask_parts(re, im, "BDT")
    (r + i).sum().backward()
    assert torch.isfinite(re.grad).all() and torch.isfinite(im.grad).all()


def test_unknown_mask_and_real_input_error_clearly():
    o = random_output(n=4)
    with pytest.raises(ValueError, match=r"unknown mask 'tanh'; choose one of UBD, BDSS, BDT"):
        compute_mask(o, "tanh")
    with pytest.raises(ValueError, match="unknown mask 'bdt'"):
        compute_mask_parts(o.real, o.imag, "bdt")
    with pytest.raises(TypeError, match="complex tensor, got torch.float32"):
        compute_mask(o.real, "BDT")
