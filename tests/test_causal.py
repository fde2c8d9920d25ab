"""DCUnet(..., causal=True): no look-ahead along time, on the network and on the waveform.

Causality is checked by perturbation: change the input from some frame (or sample) on and
check that the outputs before it do not move while the ones after do; the offline model fails
the same check. Also: gradients, the state dict shared with the offline model, checkpoints,
the 512/128 STFT setting.
"""

import copy

import pytest
import torch

import dcu
from dcu import engine
from dcu.losses import wsdr_loss
from synthetic import MINI20, make, randomise_norms, speechlike


CASES = [("tiny", {}), ("tiny", {"batch_norm": "naive", "mask": "BDSS"}),
         ("tiny", {"network": "real"}), (MINI20, {}), ("DCUnet-10", {"mask": "UBD"})]


def _random_spec(frames, bins=513, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(1, bins, frames, generator=gen),
                         torch.randn(1, bins, frames, generator=gen))


def _mask_change_by_frame(model, frames, t, seed=0):
    """Max |change| of the mask per frame when the input's frames ``>= t`` are redrawn."""
    spec = _random_spec(frames, model.config.n_fft // 2 + 1, seed)
    other = spec.clone()
    other[..., t:] = _random_spec(frames - t, model.config.n_fft // 2 + 1, seed + 1)
    with torch.no_grad():
        a, b = model.estimate_mask(spec), model.estimate_mask(other)
    return (a - b).abs().amax(dim=(0, 1))


@pytest.mark.parametrize("arch,kwargs", CASES)
@pytest.mark.parametrize("fast", [False, True])
def test_mask_frames_before_a_change_do_not_move(arch, kwargs, fast):
    model = randomise_norms(make(arch, causal=True, **kwargs)).eval()
    if fast:
        engine.optimize(model)
    for frames, t in ((37, 20), (33, 1), (29, 28)):  # on and off the stride grid
        change = _mask_change_by_frame(model, frames, t)
        assert change[:t].max() == 0, (frames, t)
        # the first frame on the first encoder's stride grid moves: a frame between two grid
        # points gets its mask from the frames up to the one before it
        s1 = model.architecture.encoders[0][3][1]
        assert change[-(-t // s1) * s1] > 1e-3
    offline = randomise_norms(make(arch, **kwargs)).eval()
    assert _mask_change_by_frame(offline, 37, 20)[:20].max() > 1e-3  # the check can fail


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (512, 128)])
def test_waveform_output_waits_at_most_one_window(n_fft, hop):
    """Output sample s depends on input samples < s + n_fft only: the latency is the window."""
    model = randomise_norms(make("tiny", causal=True, n_fft=n_fft, hop_length=hop)).eval()
    x = speechlike(12000, seed=2)
    with torch.no_grad():
        y = model(x)
        for p in (3000, 3000 + hop // 2 + 7, 7777):
            other = x.clone()
            other[p:] += 0.3 * torch.randn(len(x) - p, generator=torch.Generator().manual_seed(p))
            diff = (model(other) - y).abs()
            assert diff[:p - n_fft + 1].max() == 0, p
            assert diff[p - n_fft + hop:p].max() > 1e-4, p  # the bound is tight to a hop
    offline = randomise_norms(make("tiny", n_fft=n_fft, hop_length=hop)).eval()
    other = x.clone()
    other[5000:] = 0
    with torch.no_grad():
        assert (offline(other) - offline(x))[:5000 - n_fft].abs().max() > 1e-4


@pytest.mark.parametrize("n", [1, 255, 1025, 8001])
def test_causal_output_has_the_input_length(n):
    model = make("DCUnet-10", causal=True).eval()
    with torch.no_grad():
        y = model(speechlike(n, batch=2))
    assert y.shape == (2, n) and torch.isfinite(y).all()


@pytest.mark.parametrize("kwargs", [{}, {"network": "real"}])
def test_causal_gradients_reach_every_parameter(kwargs):
    model = make(MINI20, causal=True, **kwargs).train()
    clean = speechlike(4000, batch=2, seed=5)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(6))
    wsdr_loss(noisy, clean, model(noisy)).backward()
    last = f"decoders.{len(model.decoders) - 1}."
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if not (name.endswith(("bias", "bias_re", "bias_im")) and ".conv." in f".{name}"
                and not name.startswith(last)):  # biases before a batch norm cancel out
            assert p.grad.abs().max() > 0, name


def test_causal_and_offline_share_parameters_but_not_outputs():
    causal, offline = make("DCUnet-10", causal=True), make("DCUnet-10")
    assert causal.config.causal and not offline.config.causal
    assert {k: v.shape for k, v in causal.state_dict().items()} == \
        {k: v.shape for k, v in offline.state_dict().items()}
    offline.load_state_dict(causal.state_dict())
    x = speechlike(6000)
    with torch.no_grad():
        assert (causal.eval()(x) - offline.eval()(x)).abs().max() > 1e-4
    assert "causal=True" in repr(causal) and "causal" not in repr(offline)


def test_causal_checkpoint_round_trip(tmp_path):
    model = randomise_norms(make("tiny", causal=True, n_fft=512, hop_length=128)).eval()
    path = dcu.save(model, tmp_path / "causal.pt")
    loaded = dcu.load(path)
    assert loaded.config == model.config and loaded.config.causal
    assert (loaded.config.n_fft, loaded.config.hop_length) == (512, 128)
    x = speechlike(5000)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        torch.testing.assert_close(engine.optimize(loaded)(x), model(x), rtol=1e-4, atol=1e-5)
    # a checkpoint written before the field existed loads as the offline model it is
    payload = torch.load(path, weights_only=True)  # as a dcu of that time wrote it: format 1
    del payload["config"]["causal"]
    for key in ("tensor_sha256", "checkpoint_sha256"):
        payload["metadata"].pop(key)
    torch.save({**payload, "format_version": 1}, tmp_path / "old.pt")
    assert dcu.load(tmp_path / "old.pt").config.causal is False


def test_engine_training_step_matches_reference_when_causal():
    torch.manual_seed(5)
    ref = dcu.DCUnet(MINI20, causal=True).double()
    fast = engine.optimize(copy.deepcopy(ref))
    noisy = torch.randn(2, 3000, dtype=torch.float64) * 0.1
    losses = []
    for model in (fast, ref):
        loss = wsdr_loss(noisy, noisy * 0.6, model(noisy))
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-12)
    for (name, p1), p2 in zip(fast.named_parameters(), ref.parameters()):
        assert (p1.grad - p2.grad).abs().max() <= 1e-9 * p2.grad.abs().max() + 1e-14, name


def test_causal_must_be_a_bool():
    with pytest.raises(ValueError, match="causal must be True or False, got 'yes'"):
        dcu.DCUnet("tiny", causal="yes")
