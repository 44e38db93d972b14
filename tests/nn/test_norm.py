"""Normalisation: batch/layer/group norm against PyTorch's modules with the same weights, running
statistics, state dicts, float64 gradchecks and error messages."""

import numpy as np
import pytest

import deepwise as dw
from deepwise.autograd import gradcheck
from deepwise.nn.layers.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from deepwise.ops.normalization import batch_norm, group_norm, layer_norm


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def randn(*shape, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)


def load_from_torch(ours, theirs, seed=0):
    """Give the torch module random affine weights, then copy its whole state into ours."""
    import torch  # only reached from tests that have it

    with torch.no_grad():
        for i, p in enumerate(theirs.parameters()):
            p.copy_(torch.from_numpy(randn(*p.shape, seed=seed + i, scale=0.5, shift=1.0)))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def step(torch, ours, theirs, x, seed, atol=1e-5):
    """One forward/backward of both modules on ``x`` with the same upstream gradient; compare the
    outputs, the input gradients and every parameter gradient."""
    xo, xt = dw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), theirs(xt)
    assert yo.dtype == np.float32 and yo.shape == tuple(yt.shape)
    np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=atol)
    up = randn(*x.shape, seed=seed + 100)
    (yo * dw.tensor(up)).sum().backward()
    (yt * torch.tensor(up)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=atol, err_msg="input grad")
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad.numpy(), named[name].grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
    ours.zero_grad()
    theirs.zero_grad()


def assert_same_state(ours, theirs):
    sd, ref = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(ref)
    for k in sd:
        assert sd[k].dtype == np.dtype(str(ref[k].dtype).replace("torch.", "")), k
        assert sd[k].shape == tuple(ref[k].shape), k
        np.testing.assert_allclose(sd[k].numpy(), ref[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


# -------------------------------------------------------------------------------- batch norm
BN_CASES = [
    ("BatchNorm1d", (16, 6)),
    ("BatchNorm1d", (8, 6, 5)),
    ("BatchNorm2d", (4, 6, 5, 3)),
]


@pytest.mark.parametrize("name,shape", BN_CASES)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_train_three_steps_then_eval_matches_torch(torch, name, shape, momentum):
    ours_cls = {"BatchNorm1d": BatchNorm1d, "BatchNorm2d": BatchNorm2d}[name]
    ours, theirs = ours_cls(6, momentum=momentum), getattr(torch.nn, name)(6, momentum=momentum)
    load_from_torch(ours, theirs)
    for s in range(3):
        step(torch, ours, theirs, randn(*shape, seed=s, scale=2.0, shift=s - 0.5), seed=s)
    assert ours.num_batches_tracked.item() == 3 and ours.num_batches_tracked.dtype == np.int64
    assert_same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    step(torch, ours, theirs, randn(*shape, seed=9), seed=9)
    assert ours.num_batches_tracked.item() == 3
    assert_same_state(ours, theirs)


@pytest.mark.parametrize("grad_layout", ["nchw", "channels_first"])
def test_batchnorm2d_on_a_conv_output_layout_matches_torch(torch, grad_layout):
    """Conv outputs are stored (C, N, H, W) behind their NCHW shape; batch norm then takes its fast
    per-channel-row path. Same results as PyTorch, with a large mean (two-pass variance), and the
    layout is kept for the next layer."""
    from deepwise.tensor import Tensor

    ours, theirs = BatchNorm2d(6), torch.nn.BatchNorm2d(6)
    load_from_torch(ours, theirs)
    for s in range(2):
        x = randn(6, 4, 5, 3, seed=s, scale=0.5, shift=100.0 * s).transpose(1, 0, 2, 3)
        xo, xt = Tensor._make(x).requires_grad_(), torch.tensor(x, requires_grad=True)
        yo, yt = ours(xo), theirs(xt)
        assert yo.array.strides[1] > yo.array.strides[0]
        np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
        up = randn(4, 6, 5, 3, seed=s + 7)
        up = up.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3) if grad_layout == "channels_first" else up
        yo.backward(Tensor._make(up))
        yt.backward(torch.tensor(up))
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-3, atol=1e-4)
        for name, p in dict(theirs.named_parameters()).items():
            np.testing.assert_allclose(getattr(ours, name).grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-3)
        ours.zero_grad()
        theirs.zero_grad()
    assert_same_state(ours, theirs)


def test_gradcheck_batch_norm_on_a_conv_output_layout():
    from deepwise.tensor import Tensor

    data = np.random.default_rng(4).standard_normal((3, 4, 2, 3)).transpose(1, 0, 2, 3)
    x = Tensor._make(data).requires_grad_()
    gradcheck(lambda a, c, d: batch_norm(a, None, None, c, d, training=True),
              [x, _f64(3, seed=1, shift=1.0), _f64(3, seed=2)])
    assert x.array.strides[1] > x.array.strides[0]


@pytest.mark.parametrize("affine,track,bias", [(False, True, True), (True, False, True), (False, False, True),
                                               (True, True, False)])
def test_batchnorm_options_match_torch(torch, affine, track, bias):
    ours = BatchNorm2d(3, eps=1e-3, momentum=0.3, affine=affine, track_running_stats=track, bias=bias)
    theirs = torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.3, affine=affine, track_running_stats=track, bias=bias)
    load_from_torch(ours, theirs, seed=3)
    assert repr(ours) == repr(theirs)
    for s in range(2):
        step(torch, ours, theirs, randn(5, 3, 4, 4, seed=s, shift=2.0), seed=s)
    assert_same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    step(torch, ours, theirs, randn(2, 3, 4, 4, seed=5), seed=5)  # batch statistics when not tracking


def test_batchnorm_state_dict_layout_and_repr_equal_torch(torch):
    for ours, theirs in [(BatchNorm1d(128), torch.nn.BatchNorm1d(128)),
                         (BatchNorm2d(7, momentum=None), torch.nn.BatchNorm2d(7, momentum=None)),
                         (BatchNorm1d(4, affine=False), torch.nn.BatchNorm1d(4, affine=False)),
                         (BatchNorm1d(4, track_running_stats=False),
                          torch.nn.BatchNorm1d(4, track_running_stats=False))]:
        assert repr(ours) == repr(theirs)
        assert_same_state(ours, theirs)
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert repr(BatchNorm1d(128)) == \
        "BatchNorm1d(128, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"


def test_batchnorm_reset_running_stats():
    bn = BatchNorm1d(3)
    bn(dw.tensor(randn(8, 3, shift=4.0)))
    assert bn.running_mean.numpy().max() > 0.1
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert bn.num_batches_tracked.item() == 0


def test_functional_batch_norm_updates_given_buffers_in_place(torch):
    x = randn(10, 4, 3, seed=2, shift=1.0)
    rm, rv = dw.zeros(4), dw.ones(4)
    trm, trv = torch.zeros(4), torch.ones(4)
    for _ in range(2):
        y = batch_norm(dw.tensor(x), rm, rv, training=True, momentum=0.2, eps=1e-4)
        ref = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.2, eps=1e-4)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-6, atol=1e-7)  # unbiased variance
    ev = batch_norm(dw.tensor(x), rm, rv, training=False)
    np.testing.assert_allclose(ev.numpy(), torch.nn.functional.batch_norm(torch.tensor(x), trm, trv).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D \(N, C\) or 3D \(N, C, L\) input, got 4D"):
        BatchNorm1d(3)(dw.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D \(N, C, H, W\) input, got 2D .*\(2, 3\)"):
        BatchNorm2d(3)(dw.zeros(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): input of shape \(2, 5\) has 5 channels .*num_features=3"):
        BatchNorm1d(3)(dw.zeros(2, 5))
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected more than 1 value per channel when training, "
                                         r"got input of shape \(1, 3\)"):
        bn(dw.ones(1, 3))
    assert bn.num_batches_tracked.item() == 0
    assert bn.eval()(dw.ones(1, 3)).shape == (1, 3)  # running statistics: one sample is fine
    with pytest.raises(ValueError, match=r"batch_norm: evaluation \(training=False\) needs running_mean"):
        batch_norm(dw.zeros(4, 3), None, None)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean must have shape \(3,\) for 3 channels"):
        batch_norm(dw.zeros(4, 3), dw.zeros(2), dw.ones(3))
    with pytest.raises(ValueError, match=r"BatchNorm1d: num_features must be a positive int"):
        BatchNorm1d(0)


# ------------------------------------------------------------------------ layer / group norm
@pytest.mark.parametrize("normalized_shape,shape", [(8, (4, 8)), ((5, 6), (2, 3, 5, 6)), ([7], (3, 2, 7))])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, True)])
def test_layernorm_matches_torch(torch, normalized_shape, shape, affine, bias):
    ours = LayerNorm(normalized_shape, eps=1e-4, elementwise_affine=affine, bias=bias)
    theirs = torch.nn.LayerNorm(normalized_shape, eps=1e-4, elementwise_affine=affine, bias=bias)
    load_from_torch(ours, theirs)
    assert repr(ours) == repr(theirs)
    assert_same_state(ours, theirs)
    step(torch, ours, theirs, randn(*shape, scale=3.0, shift=1.0), seed=1)


@pytest.mark.parametrize("groups,shape", [(3, (4, 6, 5, 3)), (2, (3, 6, 7)), (6, (2, 6, 3)), (1, (2, 6, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_matches_torch(torch, groups, shape, affine):
    ours, theirs = GroupNorm(groups, 6, affine=affine), torch.nn.GroupNorm(groups, 6, affine=affine)
    load_from_torch(ours, theirs)
    assert repr(ours) == repr(theirs)
    assert_same_state(ours, theirs)
    step(torch, ours, theirs, randn(*shape, scale=2.0, shift=-1.0), seed=2)
    step(torch, ours.eval(), theirs.eval(), randn(*shape, seed=3), seed=3)  # no mode dependence


def test_group_and_layer_norm_bias_flag_matches_torch(torch):
    ours, theirs = GroupNorm(2, 4, bias=False), torch.nn.GroupNorm(2, 4, bias=False)
    load_from_torch(ours, theirs)
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    step(torch, ours, theirs, randn(3, 4, 5), seed=4)


def test_layer_and_group_norm_errors():
    with pytest.raises(ValueError, match=r"LayerNorm\(\(4,\).*input of shape \(2, 5\) must end with normalized_shape"):
        LayerNorm(4)(dw.zeros(2, 5))
    with pytest.raises(ValueError, match=r"layer_norm: input of shape \(2, 5\) does not end with .*\(3, 5\)"):
        layer_norm(dw.zeros(2, 5), (3, 5))
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels=6 must be divisible by num_groups=4"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 6.*expected input of shape \(N, 6, \*\), got \(3, 4, 2\)"):
        GroupNorm(2, 6)(dw.zeros(3, 4, 2))
    with pytest.raises(ValueError, match=r"group_norm: 5 channels .* not divisible into num_groups=2"):
        group_norm(dw.zeros(2, 5, 3), 2)
    with pytest.raises(ValueError, match=r"group_norm: weight must have shape \(4,\), got \(3,\)"):
        group_norm(dw.zeros(2, 4, 3), 2, dw.ones(3))


# ---------------------------------------------------------------------------------- gradchecks
def _f64(*shape, seed=0, shift=0.0):
    data = np.random.default_rng(seed).standard_normal(shape) + shift
    return dw.tensor(data, dtype=dw.float64, requires_grad=True)


def test_gradcheck_batch_norm_train_and_eval():
    x, w, b = _f64(5, 3, 2), _f64(3, seed=1, shift=1.0), _f64(3, seed=2)
    rm, rv = np.zeros(3), np.ones(3)
    gradcheck(lambda a, c, d: batch_norm(a, rm.copy(), rv.copy(), c, d, training=True), [x, w, b])
    gradcheck(lambda a, c, d: batch_norm(a, None, None, c, d, training=True), [x, w, b])
    rm2, rv2 = np.array([0.1, -0.2, 0.3]), np.array([0.5, 2.0, 1.5])
    gradcheck(lambda a, c, d: batch_norm(a, rm2, rv2, c, d, training=False), [x, w, b])
    gradcheck(lambda a: batch_norm(a, None, None, training=True), [_f64(6, 2)])


def test_gradcheck_layer_and_group_norm():
    x = _f64(2, 4, 3)
    gradcheck(lambda a, c, d: layer_norm(a, (4, 3), c, d), [x, _f64(4, 3, seed=1, shift=1.0), _f64(4, 3, seed=2)])
    gradcheck(lambda a: layer_norm(a, 3), [x])
    gradcheck(lambda a, c, d: group_norm(a, 2, c, d), [x, _f64(4, seed=1, shift=1.0), _f64(4, seed=2)])
    gradcheck(lambda a: group_norm(a, 4), [x])
