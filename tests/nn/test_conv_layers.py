"""Conv / pool / upsample layers and the CNN models: parity with the PyTorch layers loaded with the
same weights, PyTorch's default init, parameter layouts, reprs and error messages."""

import math

import numpy as np
import pytest

import deepwise as dw
from deepwise.models import LeNet5, SmallResNet, SmallVGG
from deepwise.nn.layers.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from deepwise.nn.layers.pool import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
    Upsample,
)

torch = pytest.importorskip("torch")


def _copy_weights(ours, theirs):
    """Load the PyTorch module's parameters and buffers into ours, by state-dict key."""
    ref = theirs.state_dict()
    own = ours.state_dict()
    assert list(own) == list(ref), "state-dict keys differ from PyTorch's"
    for key, value in ref.items():
        assert tuple(own[key].shape) == tuple(value.shape), key
        own[key].array[...] = value.numpy()


def _layer_parity(ours, theirs, shape, seed=0, tol=1e-4, **call):
    _copy_weights(ours, theirs)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    tx, dx = torch.tensor(x, requires_grad=True), dw.tensor(x, requires_grad=True)
    ty, y = theirs(tx, **call), ours(dx, **call)
    assert y.shape == tuple(ty.shape)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    y.backward(dw.tensor(g))
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=tol, atol=tol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=tol, atol=tol,
                                   err_msg=name)


CONV2D = [
    dict(kernel_size=3),
    dict(kernel_size=3, padding=1, padding_mode="reflect"),
    dict(kernel_size=(3, 2), padding=(1, 2), padding_mode="replicate", stride=(2, 1)),
    dict(kernel_size=3, padding=2, padding_mode="circular", dilation=2),
    dict(kernel_size=4, padding="same"),
    dict(kernel_size=4, padding="same", padding_mode="reflect", dilation=(1, 2)),
    dict(kernel_size=2, padding="same", padding_mode="circular"),
    dict(kernel_size=3, padding="valid", bias=False),
    dict(kernel_size=3, stride=2, padding=1, groups=2),
    dict(kernel_size=5, padding=2, groups=4, out=8),       # depthwise, multiplier 2
    dict(kernel_size=(7, 6)),                               # kernel == input size
]


@pytest.mark.parametrize("kw", CONV2D, ids=[str(i) for i in range(len(CONV2D))])
def test_conv2d_layer_matches_torch(kw):
    kw = dict(kw)
    out = kw.pop("out", 6)
    _layer_parity(Conv2d(4, out, **kw), torch.nn.Conv2d(4, out, **kw), (2, 4, 7, 6))


@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=3, padding=1, padding_mode="reflect"),
                                dict(kernel_size=4, padding="same", padding_mode="circular"),
                                dict(kernel_size=3, stride=2, dilation=2, groups=2, padding=3),
                                dict(kernel_size=2, padding="same", padding_mode="replicate", bias=False)])
def test_conv1d_layer_matches_torch(kw):
    _layer_parity(Conv1d(4, 6, **kw), torch.nn.Conv1d(4, 6, **kw), (3, 4, 11))


CONVT = [
    dict(kernel_size=3),
    dict(kernel_size=4, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), output_padding=(0, 2), groups=2, dilation=(2, 1)),
    dict(kernel_size=3, stride=2, groups=4, bias=False),
]


@pytest.mark.parametrize("kw", CONVT, ids=[str(i) for i in range(len(CONVT))])
def test_conv_transpose2d_layer_matches_torch(kw):
    _layer_parity(ConvTranspose2d(4, 8, **kw), torch.nn.ConvTranspose2d(4, 8, **kw), (2, 4, 5, 4))


def test_conv_transpose_output_size_and_1d():
    _layer_parity(ConvTranspose2d(3, 2, 3, stride=2, padding=1), torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1),
                  (2, 3, 4, 4), output_size=(8, 7))
    _layer_parity(ConvTranspose1d(3, 4, 3, stride=2, output_padding=1),
                  torch.nn.ConvTranspose1d(3, 4, 3, stride=2, output_padding=1), (2, 3, 6))
    layer = ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"requested output size \(10, 7\) is not reachable .* \[7, 8\]"):
        layer(dw.zeros(1, 3, 4, 4), output_size=(10, 7))


def test_pool_layers_match_torch():
    shape = (2, 3, 9, 8)
    for ours, theirs in [(MaxPool2d(2), torch.nn.MaxPool2d(2)),
                         (MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
                         (AvgPool2d(3, 2, 1, count_include_pad=False),
                          torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
                         (AdaptiveAvgPool2d((2, None)), torch.nn.AdaptiveAvgPool2d((2, None))),
                         (AdaptiveMaxPool2d(3), torch.nn.AdaptiveMaxPool2d(3)),
                         (Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
                         (Upsample(size=(5, 11), mode="bilinear", align_corners=True),
                          torch.nn.Upsample(size=(5, 11), mode="bilinear", align_corners=True))]:
        _layer_parity(ours, theirs, shape)
        assert repr(ours) == repr(theirs)
    _layer_parity(MaxPool1d(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1), (2, 3, 10))
    y, idx = MaxPool2d(2, return_indices=True)(dw.randn(1, 2, 4, 4))
    assert idx.dtype == np.int64 and idx.shape == (1, 2, 2, 2)


@pytest.mark.parametrize("layer", [
    lambda m: m.Conv2d(3, 8, 3, padding="same", padding_mode="reflect", bias=False),
    lambda m: m.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=2, groups=1),
    lambda m: m.Conv2d(4, 8, 1, groups=4),
    lambda m: m.ConvTranspose2d(3, 8, (3, 2), stride=2, output_padding=1),
    lambda m: m.ConvTranspose2d(4, 4, 3, padding=1, groups=4, dilation=2, bias=False),
    lambda m: m.Conv1d(3, 6, 3, groups=3, dilation=2),
    lambda m: m.ConvTranspose1d(3, 6, 3, stride=3),
    lambda m: m.MaxPool1d(3, 2),
])
def test_reprs_and_shapes_match_torch(layer):
    import deepwise.nn.layers.conv as conv_layers
    import deepwise.nn.layers.pool as pool_layers

    class Both:
        def __getattr__(self, name):
            return getattr(conv_layers, name, None) or getattr(pool_layers, name)

    ours, theirs = layer(Both()), layer(torch.nn)
    assert repr(ours) == repr(theirs)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]


@pytest.mark.parametrize("make,fan_in", [(lambda: Conv2d(16, 32, 3), 16 * 9),
                                         (lambda: Conv2d(16, 32, 5, groups=4), 4 * 25),
                                         (lambda: ConvTranspose2d(16, 32, 4, groups=2), 16 * 16),
                                         (lambda: Conv1d(8, 64, 7), 8 * 7)])
def test_default_init_is_pytorchs(make, fan_in):
    dw.manual_seed(0)
    layer = make()
    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) and the bias rule give the same bound
    for p in (layer.weight, layer.bias):
        v = p.detach().numpy()
        assert p.dtype == np.float32
        assert np.abs(v).max() <= bound + 1e-7
        assert np.abs(v).max() > 0.9 * bound  # uses the whole range
    w = layer.weight.detach().numpy()
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound
    dw.manual_seed(0)
    again = make()
    np.testing.assert_array_equal(again.weight.detach().numpy(), w)


def test_layer_errors_name_layer_and_shapes():
    layer = Conv2d(3, 16, 3)
    with pytest.raises(RuntimeError, match=r"Conv2d\(3, 16, kernel_size=\(3, 3\), stride=\(1, 1\)\): expected input "
                                           r"of shape \(N, 3, H, W\) with 3 channels, got \(8, 1, 28, 28\)"):
        layer(dw.zeros(8, 1, 28, 28))
    with pytest.raises(RuntimeError, match=r"Conv2d\(3, 16.*\): expected a 4-D input"):
        layer(dw.zeros(28, 28))
    with pytest.raises(RuntimeError, match=r"kernel size \(5, 5\) .* larger than the padded input \(3, 3\)"):
        Conv2d(3, 4, 5)(dw.zeros(1, 3, 3, 3))
    with pytest.raises(RuntimeError, match=r"Conv1d\(2, 4, .*\): expected input of shape \(N, 2, L\)"):
        Conv1d(2, 4, 3)(dw.zeros(1, 3, 9))
    with pytest.raises(ValueError, match=r"in_channels \(3\) must be divisible by groups \(2\)"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"padding_mode must be one of"):
        Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"padding='same' is not supported for strided"):
        Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"ConvTranspose2d: padding must be an int or a tuple"):
        ConvTranspose2d(3, 4, 3, padding="same")
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a tuple of 2 ints"):
        Conv2d(3, 4, (3, 3, 3))


# ---------------------------------------------------------------------------------------- models
def test_lenet5_sizes_and_parity():
    model = LeNet5()
    assert sum(p.numel() for p in model.parameters()) == 61706  # the classic count
    t = torch.nn
    ref = t.Module()
    ref.features = t.Sequential(t.Conv2d(1, 6, 5, padding=2), t.ReLU(), t.MaxPool2d(2),
                                t.Conv2d(6, 16, 5), t.ReLU(), t.MaxPool2d(2))
    ref.flatten = t.Flatten()
    ref.classifier = t.Sequential(t.Linear(400, 120), t.ReLU(), t.Linear(120, 84), t.ReLU(), t.Linear(84, 10))
    ref.forward = lambda x: ref.classifier(ref.flatten(ref.features(x)))
    _layer_parity(model, ref, (4, 1, 28, 28))
    small = LeNet5(input_size=8)
    assert small(dw.zeros(2, 1, 8, 8)).shape == (2, 10)
    wide = LeNet5(in_channels=3, num_classes=5, input_size=(32, 20), activation="tanh", pool="avg")
    assert wide(dw.zeros(2, 3, 32, 20)).shape == (2, 5)


def test_vgg_and_resnet_forward_backward():
    dw.manual_seed(0)
    vgg = SmallVGG(in_channels=1, channels=(8, 16), num_classes=10)
    x = dw.randn(4, 1, 8, 8)
    y = vgg(x)
    assert y.shape == (4, 10)
    y.sum().backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in vgg.parameters())
    convs = [m for m in vgg.modules() if isinstance(m, Conv2d)]
    assert len(convs) == 4 and all(c.bias is None and c.kernel_size == (3, 3) for c in convs)

    net = SmallResNet(in_channels=3, channels=(8, 16, 32), blocks_per_stage=(1, 2, 1), num_classes=7)
    y = net(dw.randn(2, 3, 16, 16))
    assert y.shape == (2, 7)
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    keys = list(net.state_dict())
    assert "layers.1.shortcut.0.weight" in keys and "layers.1.bn2.running_mean" in keys
    net.eval()  # running statistics: a sample's output no longer depends on the rest of the batch
    x = dw.randn(3, 3, 16, 16)
    with dw.no_grad():
        np.testing.assert_allclose(net(x[:1]).numpy(), net(x).numpy()[:1], rtol=1e-5, atol=1e-6)


def test_model_argument_errors():
    with pytest.raises(ValueError, match="LeNet5: input_size"):
        LeNet5(input_size="big")
    with pytest.raises(ValueError, match="SmallResNet: channels .* same length"):
        SmallResNet(channels=(8, 16), blocks_per_stage=(1, 1, 1))
    with pytest.raises(ValueError, match="SmallVGG: channels must list"):
        SmallVGG(channels=())
