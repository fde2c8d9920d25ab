"""dcu.stream: a causal DCUnet hop by hop equals the causal model on the whole recording.

The streaming enhancer's output, concatenated over pieces of random sizes, is the whole-file
output preceded by ``latency_samples`` zeros; each layer of its frame-by-frame network is
checked against the layer it replaces.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dcu
from dcu.engine.streaming import FrameConv, FrameConvTranspose, StreamingNetwork
from dcu.stream import StreamingEnhancer
from synthetic import make, randomise_norms, speechlike
from synthetic import MINI20


def stream(enhancer, x, seed=0, largest=700):
    """Feed ``x`` in pieces of random sizes (0 included); returns the pieces' outputs, flushed."""
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < len(x):
        piece = x[i:i + int(rng.integers(0, largest))]
        out = enhancer.process(piece)
        assert len(out) == len(piece) and type(out) is type(piece)
        outs.append(out)
        i += len(piece)
    outs.append(enhancer.flush())
    return np.concatenate(outs) if isinstance(x, np.ndarray) else torch.cat(outs)


def whole(model, x):
    with torch.no_grad():
        return model.eval()(torch.as_tensor(x)).numpy()


@pytest.mark.parametrize("arch,kwargs,n", [
    ("tiny", {}, 16000 + 123),
    ("tiny", {"batch_norm": "naive", "mask": "BDSS"}, 5000),
    ("tiny", {"network": "real", "mask": "UBD"}, 4096),
    ("tiny", {"n_fft": 512, "hop_length": 128}, 7001),
    (MINI20, {}, 6000),
    ("DCUnet-10", {}, 2 * 16000 + 77),
    ("DCUnet-10", {"n_fft": 512, "hop_length": 128}, 16000),
])
def test_streaming_equals_the_whole_file_delayed(arch, kwargs, n):
    model = randomise_norms(make(arch, causal=True, **kwargs)).eval()
    x = speechlike(n, seed=3).numpy()
    enhancer = StreamingEnhancer(model)
    assert enhancer.latency_samples == model.config.n_fft
    y = stream(enhancer, x)
    d = enhancer.latency_samples
    assert y.shape == (n + d,) and y.dtype == np.float32
    assert np.abs(y[:d]).max() == 0
    want = whole(model, x)
    assert np.abs(y[d:] - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    assert np.abs(want).max() > 0.01  # a model that outputs silence would pass trivially


@pytest.mark.parametrize("n", [1, 100, 513, 1024, 1500, 4096])
def test_short_streams_and_a_second_stream_after_flush(n):
    model = randomise_norms(make("tiny", causal=True)).eval()
    enhancer = StreamingEnhancer(model)
    x = speechlike(n, seed=n).numpy()
    first = stream(enhancer, x, seed=1, largest=300)
    second = stream(enhancer, x, seed=2, largest=300)  # flush() reset everything
    assert np.array_equal(first, second)
    np.testing.assert_allclose(first[1024:], whole(model, x), atol=1e-5)
    assert len(enhancer.flush()) == 1024  # an empty stream: only the delay line


def test_one_hop_pieces_and_tensors_in_and_out():
    model = randomise_norms(make("tiny", causal=True)).eval()
    x = speechlike(6000, seed=4)
    enhancer = StreamingEnhancer(model)
    outs = [enhancer.process(x[i:i + 256]) for i in range(0, len(x), 256)]
    assert all(isinstance(o, torch.Tensor) for o in outs)
    y = torch.cat(outs + [enhancer.flush()])
    assert isinstance(y, torch.Tensor)
    torch.testing.assert_close(y[1024:], torch.from_numpy(whole(model, x)), rtol=0, atol=1e-5)


def test_the_enhancer_keeps_the_weights_it_was_built_with():
    model = randomise_norms(make("tiny", causal=True)).eval()
    x = speechlike(3000, seed=5).numpy()
    enhancer = StreamingEnhancer(model)
    want = whole(model, x)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
    np.testing.assert_allclose(stream(enhancer, x)[1024:], want, atol=1e-5)


def test_bf16_streaming_stays_close_to_float32():
    model = make("DCUnet-10", causal=True)
    model.load_state_dict(dcu.load("dcunet10").state_dict())  # realistic weights
    x = speechlike(16000, seed=6).numpy()
    want = whole(model, x)
    got = stream(StreamingEnhancer(model, precision="bf16"), x)[1024:]
    target = want * (got @ want) / (want @ want)
    snr = 10 * np.log10((target @ target) / ((got - target) @ (got - target)))
    assert 25 < snr < 120, snr  # bfloat16 rounding, and it really ran in bfloat16


def test_an_offline_model_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^DCUnet-10 is not causal: streaming needs a model "
                                         r"built with DCUnet\(\.\.\., causal=True\)$"):
        StreamingEnhancer(dcu.DCUnet("DCUnet-10"))


@pytest.mark.parametrize("bad,error,message", [
    (np.zeros((2, 100), np.float32), ValueError, r"1-D audio \(one channel\), got shape \(2, 100\)"),
    (np.zeros(100, np.int16), TypeError, "got int16; convert 16-bit PCM with x / 32768"),
    (np.array([0.0, np.nan], np.float32), ValueError, "NaN or infinite"),
])
def test_bad_input_is_refused_in_one_line(bad, error, message):
    with pytest.raises(error, match=message):
        StreamingEnhancer(make("tiny", causal=True)).process(bad)


def test_state_is_each_layers_cache_of_past_frames():
    net = StreamingNetwork(make("DCUnet-10", causal=True).eval())
    sizes = dict(net.state_sizes())
    assert sizes["encoder 1"] == (5, 2, 513)  # 5 frames of the stacked spectrogram
    assert sizes["encoder 2"] == (5, 64, 257)
    assert sizes["decoder 1"] == (3, 128, 17)  # time kernel 3, stride 1: 3 frames
    assert sizes["decoder 5"] == (3, 128, 257)  # kernel 5, stride 2: ceil(5 / 2); skip joined


# -- the frame-by-frame layers against the whole-signal layers they replace -----------------

@pytest.mark.parametrize("kernel,stride,bins", [((7, 5), (2, 2), 33), ((5, 3), (2, 1), 17),
                                                ((1, 7), (1, 1), 9), ((7, 1), (1, 1), 12)])
def test_frame_conv_equals_a_causal_convolution(kernel, stride, bins):
    torch.manual_seed(0)
    w, b = torch.randn(6, 4, *kernel), torch.randn(6)
    x = torch.randn(4, bins, 11)
    want = F.conv2d(F.pad(x[None], (kernel[1] - 1, 0)), w, b, stride, (kernel[0] // 2, 0))[0]
    layer = FrameConv(w, b, stride[0], kernel[0] // 2, bins, None, torch.float32)
    got = []
    for t in range(x.shape[-1]):
        layer.push(x[..., t])
        if t % stride[1] == 0:
            got.append(layer.step())
    torch.testing.assert_close(torch.stack(got, -1), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,stride,in_bins,out_bins", [
    ((7, 5), (2, 2), 17, 33), ((5, 3), (2, 1), 9, 17), ((5, 3), (2, 2), 9, 18),
    ((1, 7), (1, 1), 9, 9), ((7, 1), (1, 1), 12, 12), ((4, 4), (3, 2), 5, 14)])
def test_frame_conv_transpose_equals_a_cropped_transposed_convolution(kernel, stride, in_bins,
                                                                       out_bins):
    torch.manual_seed(1)
    w, b = torch.randn(4, 6, *kernel), torch.randn(6)
    x = torch.randn(4, in_bins, 7)
    pad = kernel[0] // 2
    natural = (in_bins - 1) * stride[0] - 2 * pad + kernel[0]
    want = F.conv_transpose2d(x[None], w, b, stride, (pad, 0), (out_bins - natural, 0))[0]
    layer = FrameConvTranspose(w, b, stride, pad, in_bins, out_bins, None, torch.float32)
    got = []
    for j in range(x.shape[-1]):
        layer.push(x[..., j])
        got += [layer.step(r) for r in range(stride[1])]
    frames = x.shape[-1] * stride[1]
    torch.testing.assert_close(torch.stack(got, -1), want[..., :frames], rtol=1e-5, atol=1e-5)


def test_a_float64_model_streams_in_float32():
    model = randomise_norms(make("tiny", causal=True)).eval()
    x = speechlike(3000, seed=11).numpy()
    want = whole(model, x)
    got = stream(StreamingEnhancer(model.double()), x)[1024:]  # weights taken as float32
    assert got.dtype == np.float32 and np.abs(got - want).max() <= 1e-5
