"""Double backward (``create_graph=True``) of activations, normalisation, reductions, shape and index ops.

For each case ``f`` (deepwise fn, torch fn, input arrays, differentiable-input flags) the loss is
``sum(sin(f(x)) * v)``: the sin makes every op's ``backward`` (run on Tensors) receive a gradient that
depends on the inputs, so even linear ops (flip, pad, gather, ...) are exercised in the second
derivative. Checks:

1. the gradients built with create_graph equal the plain first-order ones bit for bit;
2. float64 finite differences of ``<grad_x, w>`` (``gradcheck`` on the first-order gradient);
3. parity of first and second derivatives with ``torch.autograd.grad(..., create_graph=True)``.
"""

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as dF

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(1234)


def _u(shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape)


def _n(shape):
    return RNG.standard_normal(shape)


# index / mask constants shared by deepwise and torch fns
_GATHER_IDX = np.array([[0, 2, 2, 1], [3, 0, 1, 1], [2, 2, 0, 3]])
_SCATTER_IDX = np.array([[1, 0], [0, 0]])
_MASK = np.array([[True, False, False, True], [False, True, False, False], [False, False, True, False]])
_ADV_IDX = np.array([2, 0, 2, 1])
_ZERO_AT_1 = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # one zero factor: prod's gradient without division


def _t(a):
    return torch.tensor(a)


CASES = {
    # activations
    "elu": (lambda x: dF.elu(x), lambda x: F.elu(x), [_u((3, 4), -3, 2)]),
    "elu_alpha": (lambda x: dF.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), [_u((3, 4), -3, 2)]),
    "gelu": (lambda x: dF.gelu(x), lambda x: F.gelu(x), [_u((3, 4), -4, 4)]),
    "gelu_tanh": (lambda x: dF.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"),
                  [_u((3, 4), -4, 4)]),
    "silu": (lambda x: dF.silu(x), lambda x: F.silu(x), [_u((3, 4), -4, 4)]),
    "softplus": (lambda x: dF.softplus(x), lambda x: F.softplus(x), [_u((3, 4), -4, 4)]),
    "softplus_beta_threshold": (lambda x: dF.softplus(x, beta=1.5, threshold=1.0),
                                lambda x: F.softplus(x, beta=1.5, threshold=1.0), [_u((3, 4), -3, 3)]),
    # unary
    "log1p": (lambda x: x.log1p(), lambda x: x.log1p(), [_u((3, 4), -0.5, 3)]),
    "rsqrt": (lambda x: x.rsqrt(), lambda x: x.rsqrt(), [_u((3, 4), 0.5, 3)]),
    # arithmetic (broadcasting, no ties)
    "maximum": (lambda a, b: dw.maximum(a, b), lambda a, b: torch.maximum(a, b), [_n((3, 4)), _n((4,))]),
    "minimum": (lambda a, b: dw.minimum(a, b), lambda a, b: torch.minimum(a, b), [_n((3, 1)), _n((3, 4))]),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), [_n((3, 4))]),
    "clamp_min": (lambda x: dw.clamp(x, min=0.1), lambda x: x.clamp(min=0.1), [_n((3, 4))]),
    # normalisation
    "layer_norm": (lambda x, w, b: dF.layer_norm(x, (4,), w, b), lambda x, w, b: F.layer_norm(x, (4,), w, b),
                   [_n((2, 3, 4)), _n((4,)), _n((4,))]),
    "layer_norm_2d_noaffine": (lambda x: dF.layer_norm(x, (3, 4)), lambda x: F.layer_norm(x, (3, 4)),
                               [_n((2, 3, 4))]),
    "group_norm": (lambda x, w, b: dF.group_norm(x, 2, w, b), lambda x, w, b: F.group_norm(x, 2, w, b),
                   [_n((2, 4, 3)), _n((4,)), _n((4,))]),
    "batch_norm_train": (
        lambda x, w, b: dF.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [_n((4, 3, 2)), _n((3,)), _n((3,))]),
    "batch_norm_eval": (
        lambda x, w, b: dF.batch_norm(x, dw.tensor(np.array([0.1, -0.2, 0.3]), dtype=dw.float64),
                                      dw.tensor(np.array([0.5, 1.5, 2.0]), dtype=dw.float64), w, b),
        lambda x, w, b: F.batch_norm(x, _t(np.array([0.1, -0.2, 0.3])), _t(np.array([0.5, 1.5, 2.0])), w, b),
        [_n((4, 3, 2)), _n((3,)), _n((3,))]),
    # reductions
    "var_dim": (lambda x: x.var(1), lambda x: x.var(1), [_n((3, 4))]),
    "var_all_biased_keepdim": (lambda x: dw.var(x, (0, 1), correction=0, keepdim=True),
                               lambda x: torch.var(x, (0, 1), correction=0, keepdim=True), [_n((3, 4))]),
    "logsumexp": (lambda x: x.logsumexp(1), lambda x: x.logsumexp(1), [_n((3, 4))]),
    "logsumexp_keepdim": (lambda x: dw.logsumexp(x, (0, 2), keepdim=True),
                          lambda x: torch.logsumexp(x, (0, 2), keepdim=True), [_n((2, 3, 2))]),
    "amax": (lambda x: x.amax((0, 2)), lambda x: x.amax((0, 2)), [_n((2, 3, 2))]),
    "amin_all": (lambda x: x.amin(), lambda x: x.amin(), [_n((3, 4))]),
    "max_dim": (lambda x: x.max(1).values, lambda x: x.max(1).values, [_n((3, 4))]),
    "min_dim_keepdim": (lambda x: x.min(0, keepdim=True).values, lambda x: x.min(0, keepdim=True).values,
                        [_n((3, 4))]),
    "cumsum": (lambda x: x.cumsum(1), lambda x: x.cumsum(1), [_n((3, 4))]),
    "prod_dim": (lambda x: x.prod(1), lambda x: x.prod(1), [_u((3, 5), 0.5, 1.5)]),
    "prod_all_with_zero": (lambda x: dw.prod(x * dw.tensor(_ZERO_AT_1, dtype=dw.float64)),
                           lambda x: torch.prod(x * _t(_ZERO_AT_1)), [_u((2, 3), 0.5, 1.5)]),
    "norm_dim": (lambda x: x.norm(dim=1), lambda x: x.norm(dim=1), [_n((3, 4))]),
    "std_dim": (lambda x: x.std(0), lambda x: x.std(0), [_n((3, 4))]),
    # shape
    "pad_constant": (lambda x: dF.pad(x, (1, 2, 0, 1), value=0.5), lambda x: F.pad(x, (1, 2, 0, 1), value=0.5),
                     [_n((2, 3, 4))]),
    "pad_reflect": (lambda x: dF.pad(x, (2, 1, 1, 2), mode="reflect"),
                    lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), [_n((1, 3, 4))]),
    "pad_replicate": (lambda x: dF.pad(x, (2, 1), mode="replicate"),
                      lambda x: F.pad(x, (2, 1), mode="replicate"), [_n((2, 3, 3))]),
    "pad_circular": (lambda x: dF.pad(x, (1, 2, 2, 0), mode="circular"),
                     lambda x: F.pad(x, (1, 2, 2, 0), mode="circular"), [_n((1, 3, 4))]),
    "flip": (lambda x: x.flip((0, 2)), lambda x: x.flip((0, 2)), [_n((2, 3, 2))]),
    "repeat": (lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3), [_n((3, 2))]),
    "tril": (lambda x: x.tril(-1), lambda x: x.tril(-1), [_n((2, 3, 4))]),
    "triu": (lambda x: x.triu(1), lambda x: x.triu(1), [_n((4, 3))]),
    "cat_split": (lambda x, y: dw.cat([x, y], 1).split([2, 3], 1)[1],
                  lambda x, y: torch.cat([x, y], 1).split([2, 3], 1)[1], [_n((3, 2)), _n((3, 3))]),
    # index
    "gather": (lambda x: x.gather(1, dw.tensor(_GATHER_IDX)), lambda x: x.gather(1, _t(_GATHER_IDX)),
               [_n((3, 4))]),
    "masked_fill": (lambda x: x.masked_fill(dw.tensor(_MASK), 2.0), lambda x: x.masked_fill(_t(_MASK), 2.0),
                    [_n((3, 4))]),
    "scatter_add": (lambda x, s: x.scatter_add(0, dw.tensor(_SCATTER_IDX), s),
                    lambda x, s: x.scatter_add(0, _t(_SCATTER_IDX), s), [_n((2, 3)), _n((2, 2))]),
    "scatter_add_src_larger": (lambda x, s: x.scatter_add(0, dw.tensor(_SCATTER_IDX), s),
                               lambda x, s: x.scatter_add(0, _t(_SCATTER_IDX), s), [_n((2, 3)), _n((3, 3))]),
    "advanced_getitem": (lambda x: x[dw.tensor(_ADV_IDX)], lambda x: x[_t(_ADV_IDX)], [_n((3, 2))]),
}

# activations, dropout, embedding and the losses (all of them have a double backward now)
_EMB_IDX = np.array([[0, 2, 2], [4, 0, 1]])
_CLASS_T = np.array([[0, 2], [1, -100], [2, 2], [1, 0]])  # (4, 2) targets of (4, 3, 2) logits, one ignored
_CLASS_W = np.array([0.5, 2.0, 1.5])
_LOSS_W = RNG.random((3, 4))
_POS_W = np.array([0.5, 1.0, 2.0, 3.0])
_PROBS = RNG.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1)


def _dropped(x, fn):
    dw.manual_seed(0)  # the same mask on every call, so finite differences see one function
    return fn(x)


with dw.autograd.no_grad():
    _DROP = _dropped(dw.ones((3, 4), dtype=dw.float64), lambda x: dF.dropout(x, 0.4)).numpy()
    _ALPHA = _dropped(dw.zeros((3, 4), dtype=dw.float64), lambda x: dF.alpha_dropout(x, 0.3, training=True)).numpy()
    _ALPHA_SCALE = _dropped(dw.ones((3, 4), dtype=dw.float64),
                            lambda x: dF.alpha_dropout(x, 0.3, training=True)).numpy() - _ALPHA


def _dwt(a):
    return dw.tensor(a)


CASES.update({
    "relu": (lambda x: dF.relu(x) * x, lambda x: F.relu(x) * x, [_u((3, 4)) + 0.05]),
    "leaky_relu": (lambda x: dF.leaky_relu(x, 0.2) * x, lambda x: F.leaky_relu(x, 0.2) * x, [_u((3, 4)) + 0.05]),
    "softmax": (lambda x: dF.softmax(x, 1), lambda x: F.softmax(x, 1), [_n((3, 4))]),
    "log_softmax": (lambda x: dF.log_softmax(x, 0), lambda x: F.log_softmax(x, 0), [_n((3, 4))]),
    "dropout": (lambda x: _dropped(x, lambda x: dF.dropout(x, 0.4)), lambda x: x * _t(_DROP), [_n((3, 4))]),
    "alpha_dropout": (lambda x: _dropped(x, lambda x: dF.alpha_dropout(x, 0.3, training=True)),
                      lambda x: x * _t(_ALPHA_SCALE) + _t(_ALPHA), [_n((3, 4))]),
    "embedding": (lambda w: dF.embedding(_dwt(_EMB_IDX), w), lambda w: F.embedding(_t(_EMB_IDX), w), [_n((5, 3))]),
    "embedding_padding": (lambda w: dF.embedding(_dwt(_EMB_IDX), w, padding_idx=1),
                          lambda w: F.embedding(_t(_EMB_IDX), w, padding_idx=1), [_n((5, 3))]),
    "embedding_freq": (lambda w: dF.embedding(_dwt(_EMB_IDX), w, padding_idx=1, scale_grad_by_freq=True),
                       lambda w: F.embedding(_t(_EMB_IDX), w, padding_idx=1, scale_grad_by_freq=True),
                       [_n((5, 3))]),
    "mse_loss": (lambda x, y: dF.mse_loss(x, y), lambda x, y: F.mse_loss(x, y), [_n((3, 4)), _n((3, 4))]),
    "mse_loss_weighted_sum": (lambda x, y: dF.mse_loss(x, y, reduction="sum", weight=_dwt(_LOSS_W)),
                              lambda x, y: (F.mse_loss(x, y, reduction="none") * _t(_LOSS_W)).sum(),
                              [_n((3, 4)), _n((3, 4))]),
    "l1_loss": (lambda x, y: dF.l1_loss(x, y, reduction="none"), lambda x, y: F.l1_loss(x, y, reduction="none"),
                [_n((3, 4)), _n((3, 4))]),
    "smooth_l1_loss": (lambda x, y: dF.smooth_l1_loss(x, y, beta=0.8),
                       lambda x, y: F.smooth_l1_loss(x, y, beta=0.8), [_n((3, 4)), _n((3, 4))]),
    "huber_loss": (lambda x, y: dF.huber_loss(x, y, delta=0.6, reduction="sum"),
                   lambda x, y: F.huber_loss(x, y, delta=0.6, reduction="sum"), [_n((3, 4)), _n((3, 4))]),
    "nll_loss": (lambda x: dF.nll_loss(x, _dwt(_CLASS_T), weight=_dwt(_CLASS_W)),
                 lambda x: F.nll_loss(x, _t(_CLASS_T), weight=_t(_CLASS_W)), [_n((4, 3, 2))]),
    "cross_entropy": (lambda x: dF.cross_entropy(x, _dwt(_CLASS_T[:, 0].clip(0))),
                      lambda x: F.cross_entropy(x, _t(_CLASS_T[:, 0].clip(0))), [_n((4, 3))]),
    "cross_entropy_weight_smooth": (
        lambda x: dF.cross_entropy(x, _dwt(_CLASS_T), weight=_dwt(_CLASS_W), label_smoothing=0.1),
        lambda x: F.cross_entropy(x, _t(_CLASS_T), weight=_t(_CLASS_W), label_smoothing=0.1), [_n((4, 3, 2))]),
    "cross_entropy_none_smooth": (
        lambda x: dF.cross_entropy(x, _dwt(_CLASS_T), reduction="none", label_smoothing=0.2),
        lambda x: F.cross_entropy(x, _t(_CLASS_T), reduction="none", label_smoothing=0.2), [_n((4, 3, 2))]),
    "cross_entropy_probs": (
        lambda x, t: dF.cross_entropy(x, t, weight=_dwt(_CLASS_W), label_smoothing=0.2),
        lambda x, t: F.cross_entropy(x, t, weight=_t(_CLASS_W), label_smoothing=0.2), [_n((4, 3, 2)), _PROBS]),
    "binary_cross_entropy": (lambda p, y: dF.binary_cross_entropy(p, y, weight=_dwt(_LOSS_W)),
                             lambda p, y: F.binary_cross_entropy(p, y, weight=_t(_LOSS_W)),
                             [_u((3, 4), 0.05, 0.95), _u((3, 4), 0, 1)]),
    "bce_with_logits": (lambda x, y: dF.binary_cross_entropy_with_logits(x, y),
                        lambda x, y: F.binary_cross_entropy_with_logits(x, y), [_n((3, 4)), _u((3, 4), 0, 1)]),
    "bce_with_logits_pos_weight": (
        lambda x, y: dF.binary_cross_entropy_with_logits(x, y, weight=_dwt(_LOSS_W), pos_weight=_dwt(_POS_W),
                                                         reduction="sum"),
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight=_t(_LOSS_W), pos_weight=_t(_POS_W),
                                                        reduction="sum"), [_n((3, 4)), _u((3, 4), 0, 1)]),
    "kl_div": (lambda x, t: dF.kl_div(x, t, reduction="batchmean"),
               lambda x, t: F.kl_div(x, t, reduction="batchmean"), [_n((3, 4)), _u((3, 4), 0.1, 1)]),
    "kl_div_log_target": (lambda x, t: dF.kl_div(x, t, reduction="sum", log_target=True),
                          lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True), [_n((3, 4)), _n((3, 4))]),
})

# matmul / linear, convolutions (both first-order gradients at once, and each alone next to a
# constant operand: the three backward paths) and pools (random inputs: no ties)
_CONV_W = RNG.standard_normal((3, 2, 3, 3))  # conv2d: 2 -> 3 channels; conv_transpose2d: 3 -> 2
_CONV_X = RNG.standard_normal((2, 3, 5, 4))


def _f64(a):
    return dw.tensor(a, dtype=dw.float64)


CASES.update({
    "matmul_2d": (lambda a, b: a @ b, lambda a, b: a @ b, [_n((3, 4)), _n((4, 2))]),
    "matmul_batched_broadcast": (lambda a, b: a @ b, lambda a, b: a @ b, [_n((2, 3, 4)), _n((4, 2))]),
    "matmul_1d_3d": (lambda a, b: a @ b, lambda a, b: a @ b, [_n((4,)), _n((2, 4, 3))]),
    "matmul_3d_1d": (lambda a, b: a @ b, lambda a, b: a @ b, [_n((2, 3, 4)), _n((4,))]),
    "dot": (lambda a, b: dw.dot(a, b), lambda a, b: torch.dot(a, b), [_n((4,)), _n((4,))]),
    "linear": (lambda x, w, b: dF.linear(x, w, b), lambda x, w, b: F.linear(x, w, b),
               [_n((2, 3, 4)), _n((5, 4)), _n((5,))]),
    "linear_2d_no_bias": (lambda x, w: dF.linear(x, w), lambda x, w: F.linear(x, w), [_n((3, 4)), _n((2, 4))]),
    "conv2d": (lambda x, w, b: dF.conv2d(x, w, b, (2, 1), 1, (1, 2), 2),
               lambda x, w, b: F.conv2d(x, w, b, (2, 1), 1, (1, 2), 2),
               [_n((2, 4, 5, 6)), _n((4, 2, 3, 2)), _n((4,))]),
    "conv2d_stride1": (lambda x, w: dF.conv2d(x, w, None, 1, 1), lambda x, w: F.conv2d(x, w, None, 1, 1),
                       [_n((2, 2, 4, 4)), _n((3, 2, 3, 3))]),
    "conv2d_input_only": (lambda x: dF.conv2d(x, _f64(_CONV_W), None, 1, 1),
                          lambda x: F.conv2d(x, _t(_CONV_W), None, 1, 1), [_n((2, 2, 4, 4))]),
    "conv2d_weight_only": (lambda w: dF.conv2d(_f64(_CONV_X), w, None, 2, 1),
                           lambda w: F.conv2d(_t(_CONV_X), w, None, 2, 1), [_n((2, 3, 3, 3))]),
    "conv_transpose2d": (lambda x, w, b: dF.conv_transpose2d(x, w, b, 2, 1, 1, 2),
                         lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1, 2),
                         [_n((2, 4, 3, 3)), _n((4, 2, 3, 3)), _n((4,))]),
    "conv_transpose2d_input_only": (lambda x: dF.conv_transpose2d(x, _f64(_CONV_W), None, 2),
                                    lambda x: F.conv_transpose2d(x, _t(_CONV_W), None, 2), [_n((1, 3, 3, 3))]),
    "conv_transpose2d_weight_only": (lambda w: dF.conv_transpose2d(_f64(_CONV_X), w, None, 1, 1),
                                     lambda w: F.conv_transpose2d(_t(_CONV_X), w, None, 1, 1), [_n((3, 2, 3, 3))]),
    "conv1d": (lambda x, w, b: dF.conv1d(x, w, b, 2, 1), lambda x, w, b: F.conv1d(x, w, b, 2, 1),
               [_n((2, 3, 7)), _n((4, 3, 3)), _n((4,))]),
    "max_pool2d": (lambda x: dF.max_pool2d(x, 3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1), [_n((2, 2, 5, 6))]),
    "max_pool2d_2x2": (lambda x: dF.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), [_n((2, 3, 4, 4))]),
    "max_pool1d_dilated": (lambda x: dF.max_pool1d(x, 2, 1, 0, 2), lambda x: F.max_pool1d(x, 2, 1, 0, 2),
                           [_n((2, 2, 7))]),
    "avg_pool2d": (lambda x: dF.avg_pool2d(x, 3, 2, 1, True, False),
                   lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), [_n((2, 2, 6, 5))]),
    "adaptive_max_pool2d": (lambda x: dF.adaptive_max_pool2d(x, (3, 2)),
                            lambda x: F.adaptive_max_pool2d(x, (3, 2)), [_n((2, 2, 5, 5))]),
})

# torch 2.x refuses its own double backward of scatter_add when src is larger than index
NO_TORCH = {"scatter_add_src_larger"}
# our erf is a rational approximation good to ~1.2e-7: exact-GELU parity is to that precision
TORCH_RTOL = {"gelu": (1e-6, 1e-5)}


def _loss_inputs(fn, xs, v):
    out = fn(*xs)
    return (out.sin() * dw.tensor(v, dtype=dw.float64)).sum()


def _first_grads(fn, xs, v, create_graph):
    with dw.autograd.enable_grad():
        return dw.autograd.grad(_loss_inputs(fn, xs, v), xs, create_graph=create_graph)


def _setup(name):
    fn, tfn, arrays = CASES[name]
    xs = [dw.tensor(a.copy(), dtype=dw.float64, requires_grad=True) for a in arrays]
    with dw.autograd.no_grad():
        out_shape = fn(*xs).shape
    v = np.random.default_rng(7).standard_normal(out_shape)
    return fn, tfn, arrays, xs, v


@pytest.mark.parametrize("name", sorted(CASES))
def test_create_graph_matches_first_order(name):
    fn, _, _, xs, v = _setup(name)
    plain = _first_grads(fn, xs, v, create_graph=False)
    graph = _first_grads(fn, xs, v, create_graph=True)
    assert any(g.requires_grad for g in graph), "create_graph gave gradients outside the graph"
    for p, g in zip(plain, graph):
        # the same formula; only the summation order may differ (the first-order normalisation
        # kernels sum contiguous rows with BLAS dots), so float64 agrees to a few ulps
        np.testing.assert_allclose(g.detach().numpy(), p.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_order_finite_differences(name):
    fn, _, _, xs, v = _setup(name)

    def first_grad(*inputs):
        return tuple(_first_grads(fn, inputs, v, create_graph=True))

    assert dw.autograd.gradcheck(first_grad, xs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_order_matches_torch(name):
    if name in NO_TORCH:
        pytest.skip("torch cannot compute this double backward itself")
    fn, tfn, arrays, xs, v = _setup(name)
    rtol1, rtol2 = TORCH_RTOL.get(name, (1e-7, 1e-6))
    ws = [np.random.default_rng(11 + i).standard_normal(a.shape) for i, a in enumerate(arrays)]

    gs = _first_grads(fn, xs, v, create_graph=True)
    penalty = sum((g * dw.tensor(w, dtype=dw.float64)).sum() for g, w in zip(gs, ws))
    second = dw.autograd.grad(penalty, xs, allow_unused=True)

    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    tgs = torch.autograd.grad((tfn(*txs).sin() * _t(v)).sum(), txs, create_graph=True)
    tpen = sum((g * _t(w)).sum() for g, w in zip(tgs, ws))
    tsecond = torch.autograd.grad(tpen, txs, allow_unused=True)

    for g, tg in zip(gs, tgs):
        np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=rtol1, atol=1e-9)
    for s, ts in zip(second, tsecond):
        mine = np.zeros_like(arrays[0]) if s is None else s.numpy()
        theirs = np.zeros_like(mine) if ts is None else ts.numpy()
        np.testing.assert_allclose(mine, theirs, rtol=rtol2, atol=1e-8)


# ----------------------------------------------------------------------------------- ties and masks
def _grads_both_ways(fn, arrays):
    xs = [dw.tensor(np.asarray(a), dtype=dw.float64, requires_grad=True) for a in arrays]
    plain = dw.autograd.grad(fn(*xs).sum(), xs)
    graph = dw.autograd.grad(fn(*xs).sum(), xs, create_graph=True)
    return [p.numpy() for p in plain], [g.detach().numpy() for g in graph]


@pytest.mark.parametrize("op,fn,arrays,expected", [
    ("maximum", lambda a, b: dw.maximum(a, b), ([1.0, 2.0, 3.0], [1.0, 0.0, 4.0]),
     [[0.5, 1.0, 0.0], [0.5, 0.0, 1.0]]),
    ("minimum", lambda a, b: dw.minimum(a, b), ([1.0, 2.0, 3.0], [1.0, 0.0, 4.0]),
     [[0.5, 0.0, 1.0], [0.5, 1.0, 0.0]]),
    ("clamp", lambda x: x.clamp(-1.0, 1.0), ([-1.0, 0.0, 1.0, 2.0, -3.0],), [[1.0, 1.0, 1.0, 0.0, 0.0]]),
    ("amax", lambda x: x.amax(), ([[3.0, 1.0], [3.0, 3.0]],), [[[1 / 3, 0.0], [1 / 3, 1 / 3]]]),
    ("max_dim", lambda x: x.max(1).values, ([[2.0, 5.0, 5.0], [1.0, 1.0, 0.0]],),
     [[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]),
])
def test_ties_keep_the_first_order_rule(op, fn, arrays, expected):
    plain, graph = _grads_both_ways(fn, arrays)
    for p, g, e in zip(plain, graph, expected):
        np.testing.assert_array_equal(g, p)
        np.testing.assert_allclose(g, e, rtol=1e-15)


def test_hessian_vector_product_through_layer_norm_mlp_matches_torch():
    rng = np.random.default_rng(3)
    xv, wv, gv, bv = rng.standard_normal((5, 6)), rng.standard_normal((6, 6)), rng.standard_normal(6), \
        rng.standard_normal(6)
    vec = rng.standard_normal((6, 6))

    def f64(a):
        return dw.tensor(a, dtype=dw.float64)

    w = dw.tensor(wv, dtype=dw.float64, requires_grad=True)
    h = dF.layer_norm(f64(xv) @ w, (6,), f64(gv), f64(bv))
    loss = dF.gelu(h, approximate="tanh").logsumexp(1).sum()
    (gw,) = dw.autograd.grad(loss, w, create_graph=True)
    (hvp,) = dw.autograd.grad((gw * f64(vec)).sum(), w)

    tw = torch.tensor(wv, requires_grad=True)
    th = F.layer_norm(_t(xv) @ tw, (6,), _t(gv), _t(bv))
    (tgw,) = torch.autograd.grad(F.gelu(th, approximate="tanh").logsumexp(1).sum(), tw, create_graph=True)
    (thvp,) = torch.autograd.grad((tgw * _t(vec)).sum(), tw)
    np.testing.assert_allclose(hvp.numpy(), thvp.numpy(), rtol=1e-6, atol=1e-8)


def test_batch_norm_double_backward_leaves_running_stats_alone():
    rm, rv = dw.zeros(3, dtype=dw.float64), dw.ones(3, dtype=dw.float64)
    x = dw.tensor(np.random.default_rng(5).standard_normal((4, 3)), requires_grad=True)
    y = dF.batch_norm(x, rm, rv, training=True)
    before = (rm.numpy().copy(), rv.numpy().copy())
    (gx,) = dw.autograd.grad((y.sin()).sum(), x, create_graph=True)
    (ggx,) = dw.autograd.grad(gx.square().sum(), x)
    np.testing.assert_array_equal(rm.numpy(), before[0])
    np.testing.assert_array_equal(rv.numpy(), before[1])
    assert np.isfinite(ggx.numpy()).all() and np.abs(ggx.numpy()).sum() > 0


def test_gather_third_order_stays_in_the_graph():
    # gather's double backward is scatter_add, whose backward is gather again: any order works
    x = dw.tensor(np.array([[0.3, -1.2, 0.8]]), requires_grad=True)
    idx = dw.tensor(np.array([[2, 2, 0]]))
    y = x.gather(1, idx)
    (g1,) = dw.autograd.grad((y ** 4).sum(), x, create_graph=True)
    (g2,) = dw.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = dw.autograd.grad(g2.sum(), x)
    # sum over picks of y^4: x2 picked twice, x0 once, x1 never
    xv = x.detach().numpy()[0]
    np.testing.assert_allclose(g3.numpy()[0], [24 * xv[0], 0.0, 2 * 24 * xv[2]], rtol=1e-12)
