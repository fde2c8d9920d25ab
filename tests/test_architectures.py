"""dcu.architectures: the paper's table as data, and the parameter counts it implies."""

import pytest

from dcu import DCUnet
from dcu.architectures import ARCHITECTURES, Architecture, get_architecture

# The encoder rows of the paper's architecture table (Choi et al., ICLR 2019, arXiv 1903.03107,
# appendix), copied by hand: (in, out, (kf, kt), (sf, st)).
PAPER_ENCODERS = {
    "DCUnet-10": [
        (1, 32, (7, 5), (2, 2)), (32, 64, (7, 5), (2, 2)), (64, 64, (5, 3), (2, 2)),
        (64, 64, (5, 3), (2, 2)), (64, 64, (5, 3), (2, 1))],
    "DCUnet-16": [
        (1, 32, (7, 5), (2, 2)), (32, 32, (7, 5), (2, 1)), (32, 64, (7, 5), (2, 2)),
        (64, 64, (5, 3), (2, 1)), (64, 64, (5, 3), (2, 2)), (64, 64, (5, 3), (2, 1)),
        (64, 64, (5, 3), (2, 2)), (64, 64, (5, 3), (2, 1))],
    "DCUnet-20": [
        (1, 32, (7, 1), (1, 1)), (32, 32, (1, 7), (1, 1)), (32, 64, (7, 5), (2, 2)),
        (64, 64, (7, 5), (2, 1)), (64, 64, (5, 3), (2, 2)), (64, 64, (5, 3), (2, 1)),
        (64, 64, (5, 3), (2, 2)), (64, 64, (5, 3), (2, 1)), (64, 64, (5, 3), (2, 2)),
        (64, 90, (5, 3), (2, 1))],
    "Large-DCUnet-20": [
        (1, 45, (7, 1), (1, 1)), (45, 45, (1, 7), (1, 1)), (45, 90, (7, 5), (2, 2)),
        (90, 90, (7, 5), (2, 1)), (90, 90, (5, 3), (2, 2)), (90, 90, (5, 3), (2, 1)),
        (90, 90, (5, 3), (2, 2)), (90, 90, (5, 3), (2, 1)), (90, 90, (5, 3), (2, 2)),
        (90, 128, (5, 3), (2, 1))],
}
PUBLISHED_PARAMS = {"DCUnet-10": 1.42e6, "DCUnet-16": 2.38e6, "DCUnet-20": 3.53e6,
                    "Large-DCUnet-20": 7.66e6}
DEPTH = {"tiny": 4, "small": 8, "DCUnet-10": 10, "DCUnet-16": 16, "DCUnet-20": 20, "Large-DCUnet-20": 20}


@pytest.mark.parametrize("name", list(PAPER_ENCODERS))
def test_encoders_match_the_paper(name):
    arch = ARCHITECTURES[name]
    assert arch.name == name
    assert [tuple(layer) for layer in arch.encoders] == PAPER_ENCODERS[name]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_decoders_mirror_the_encoders_with_skips(name):
    arch = ARCHITECTURES[name]
    enc, dec = arch.encoders, arch.decoders
    n = len(enc)
    assert len(dec) == n and arch.depth == DEPTH[name]
    for i, (cin, cout, kernel, stride) in enumerate(dec):
        mirror = enc[n - 1 - i]
        assert (kernel, stride) == (mirror[2], mirror[3]), (name, i)
        skip = 0 if i == 0 else enc[n - 1 - i][1]  # the matching encoder's output channels
        prev = enc[-1][1] if i == 0 else dec[i - 1][1]
        assert cin == prev + skip, (name, i)
    assert dec[-1][1] == 1  # the mask: one complex channel
    if name != "Large-DCUnet-20":
        assert [d[1] for d in dec[:-1]] == [e[0] for e in reversed(enc)][:-1]


def test_spot_check_decoders():
    d10 = ARCHITECTURES["DCUnet-10"].decoders
    assert d10[0] == (64, 64, (5, 3), (2, 1)) and d10[1] == (128, 64, (5, 3), (2, 2))
    assert d10[3] == (128, 32, (7, 5), (2, 2)) and d10[4] == (64, 1, (7, 5), (2, 2))
    d20 = ARCHITECTURES["DCUnet-20"].decoders
    assert d20[0] == (90, 64, (5, 3), (2, 1)) and d20[-1] == (64, 1, (7, 1), (1, 1))
    assert d20[-2] == (64, 32, (1, 7), (1, 1))
    large = ARCHITECTURES["Large-DCUnet-20"].decoders
    assert [d[0] for d in large] == [128] + [180] * 7 + [135, 135]  # the paper's appendix: 128, 180, 135
    assert [d[1] for d in large] == [90] * 9 + [1]


def test_strides_fit_the_stft():
    for name, arch in ARCHITECTURES.items():
        assert 512 % arch.freq_multiple == 0, name  # 513 bins = 1 + k * freq_multiple
    assert ARCHITECTURES["DCUnet-10"].frame_multiple == 16
    assert ARCHITECTURES["DCUnet-10"].freq_multiple == 32
    assert ARCHITECTURES["DCUnet-20"].frame_multiple == 16
    assert ARCHITECTURES["DCUnet-20"].freq_multiple == 256
    assert ARCHITECTURES["tiny"].frame_multiple == 4


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_parameter_counts_match_published_implementations(name, record_property):
    naive = DCUnet(name, batch_norm="naive").num_parameters()
    full = DCUnet(name, batch_norm="complex").num_parameters()
    record_property(f"params_{name}_naive", naive)
    record_property(f"params_{name}_complex", full)
    print(f"{name}: {naive:,} parameters with per-part BN, {full:,} with complex BN")
    assert abs(naive / PUBLISHED_PARAMS[name] - 1) < 0.01
    # complex BN has 5 parameters per channel (gamma_rr, gamma_ri, gamma_ii, beta_r, beta_i)
    # instead of per-part BN's 4
    arch = ARCHITECTURES[name]
    n_bn_channels = sum(layer[1] for layer in arch.encoders + arch.decoders[:-1])
    assert full - naive == n_bn_channels


def test_parameter_count_from_the_table():
    """Complex conv: 2 * (k_f * k_t * cin * cout + cout); per-part BN: 4 per complex channel."""
    arch = ARCHITECTURES["DCUnet-16"]
    layers = arch.encoders + arch.decoders
    conv = sum(2 * (k[0] * k[1] * cin * cout + cout) for cin, cout, k, _ in layers)
    bn = sum(4 * cout for _, cout, _, _ in layers[:-1])
    assert DCUnet("DCUnet-16", batch_norm="naive").num_parameters() == conv + bn


@pytest.mark.parametrize("alias,name", [
    ("20", "DCUnet-20"), ("dcunet20", "DCUnet-20"), ("DCUNET_20", "DCUnet-20"),
    ("DCUnet-20", "DCUnet-20"), ("10", "DCUnet-10"), ("dcunet-16", "DCUnet-16"),
    ("large", "Large-DCUnet-20"), ("large-dcunet20", "Large-DCUnet-20"), ("Tiny", "tiny"),
])
def test_aliases_resolve(alias, name):
    assert get_architecture(alias) is ARCHITECTURES[name]


def test_architecture_objects_pass_through_and_build():
    custom = Architecture("custom", ((1, 4, (3, 3), (2, 2)),), ((4, 1, (3, 3), (2, 2)),))
    assert get_architecture(custom) is custom
    assert DCUnet(custom).config.arch == "custom"
    assert DCUnet("dcunet10").config.arch == "DCUnet-10"  # the model accepts aliases too
    assert DCUnet("Tiny").config.arch == "tiny"


def test_unknown_architecture_errors_clearly():
    with pytest.raises(ValueError, match="unknown architecture 'DCUnet-12'; choose one of tiny, small, "
                                         "DCUnet-10, DCUnet-16, DCUnet-20, Large-DCUnet-20"):
        get_architecture("DCUnet-12")
    with pytest.raises(ValueError, match="unknown architecture '30'"):
        DCUnet("30")


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_feature_sizes_are_what_the_encoders_produce(name):
    """Architecture.feature_sizes (used by dcu.jobs.speed's FLOP count) against the real network."""
    import torch

    model = DCUnet(name).eval()
    spec = get_architecture(name)
    frames = 4 * spec.frame_multiple + 1
    x = model.to_network(torch.zeros(1, 513, frames, dtype=torch.complex64))
    seen = [tuple(x.shape[-2:])]
    with torch.no_grad():
        for encoder in model.encoders:
            x = encoder(x)
            seen.append(tuple(x.shape[-2:]))
    assert spec.feature_sizes(513, frames) == seen
