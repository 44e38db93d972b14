"""conv1d / conv2d / conv_transpose2d: parity with PyTorch (forward and all gradients), finite
differences in float64, double backward, and the error messages."""

import threading
import time

import numpy as np
import pytest

import deepwise as dw
from deepwise.autograd import gradcheck
from deepwise.ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = ATOL = 1e-4


def _arrays(rng, *shapes, dtype=np.float32):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _parity(dw_fn, torch_fn, x, w, b, rtol=RTOL, atol=ATOL):
    """Compare the output and the gradients for x, w and b under a random output gradient."""
    rng = np.random.default_rng(1)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = torch_fn(tx, tw, tb)
    g = rng.standard_normal(tuple(ty.shape)).astype(x.dtype)
    ty.backward(torch.tensor(g))
    dx, dwt = dw.tensor(x, requires_grad=True), dw.tensor(w, requires_grad=True)
    db = None if b is None else dw.tensor(b, requires_grad=True)
    assert dx.dtype == np.float32
    y = dw_fn(dx, dwt, db)
    assert y.shape == tuple(ty.shape)
    assert y.dtype == np.dtype(x.dtype)
    y.backward(dw.tensor(g))
    pairs = [(y, ty), (dx.grad, tx.grad), (dwt.grad, tw.grad)]
    if b is not None:
        pairs.append((db.grad, tb.grad))
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)
    for t in (dx, dwt):
        assert t.grad.dtype == np.dtype(x.dtype)


# (N, C, H, W, O, kernel, stride, padding, dilation, groups)
CONV2D_CASES = [
    (2, 3, 7, 9, 4, (3, 3), 1, 0, 1, 1),
    (2, 3, 7, 9, 4, (3, 3), 1, 1, 1, 1),
    (3, 4, 11, 10, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2),
    (2, 4, 9, 9, 8, (3, 3), 2, 1, 1, 4),            # depthwise with multiplier 2
    (2, 6, 8, 8, 6, (3, 3), 1, 1, 1, 6),            # depthwise
    (2, 2, 8, 7, 3, (4, 4), 1, "same", 1, 1),        # same, even kernel: extra pad bottom/right
    (2, 2, 8, 7, 3, (2, 3), 1, "same", (2, 1), 1),   # same, even kernel with dilation
    (2, 2, 8, 7, 3, (3, 3), 1, "valid", 1, 1),
    (2, 3, 5, 6, 4, (5, 6), 1, 0, 1, 1),            # kernel == input size
    (1, 3, 5, 5, 2, (3, 3), 3, 2, 1, 1),            # padding larger than needed, stride 3
    (2, 2, 13, 11, 4, (3, 3), (3, 2), (0, 2), (2, 3), 2),
    (1, 1, 1, 1, 3, (1, 1), 1, 0, 1, 1),
]


@pytest.mark.parametrize("case", CONV2D_CASES, ids=[str(i) for i in range(len(CONV2D_CASES))])
def test_conv2d_matches_torch(case):
    n, c, h, w_, o, k, s, p, d, g = case
    rng = np.random.default_rng(0)
    x, w, b = _arrays(rng, (n, c, h, w_), (o, c // g) + k, (o,))
    _parity(lambda x, w, b: conv2d(x, w, b, s, p, d, g), lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), x, w, b)


def test_conv2d_without_bias_and_unbatched():
    rng = np.random.default_rng(2)
    x, w = _arrays(rng, (2, 3, 6, 6), (4, 3, 3, 3))
    _parity(lambda x, w, b: conv2d(x, w, None, 1, 1), lambda x, w, b: F.conv2d(x, w, None, 1, 1), x, w, None)
    y = conv2d(dw.tensor(x[0]), dw.tensor(w), padding=1)
    ref = F.conv2d(torch.tensor(x[0]), torch.tensor(w), padding=1)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=RTOL, atol=ATOL)


# (N, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups)
TRANSPOSE_CASES = [
    (2, 3, 5, 6, 4, (3, 3), 1, 0, 0, 1, 1),
    (2, 3, 5, 6, 4, (3, 3), 2, 1, 1, 1, 1),
    (2, 4, 4, 5, 6, (3, 2), (2, 3), (1, 0), (1, 2), (1, 2), 2),
    (2, 4, 5, 5, 4, (4, 4), 2, 1, 0, 1, 4),         # depthwise, the DCGAN upsampling shape
    (1, 2, 3, 3, 2, (3, 3), 1, 1, 1, 2, 1),         # output_padding < dilation with stride 1
    (2, 2, 1, 1, 3, (4, 4), 1, 0, 0, 1, 1),         # 1x1 -> 4x4 (generator's first layer)
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[str(i) for i in range(len(TRANSPOSE_CASES))])
def test_conv_transpose2d_matches_torch(case):
    n, c, h, w_, o, k, s, p, op, d, g = case
    rng = np.random.default_rng(0)
    x, w, b = _arrays(rng, (n, c, h, w_), (c, o // g) + k, (o,))
    _parity(lambda x, w, b: conv_transpose2d(x, w, b, s, p, op, g, d),
            lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d), x, w, b)


@pytest.mark.parametrize("s,p,d,g,pad", [(1, 0, 1, 1, 0), (2, 1, 1, 2, 0), (1, "same", 2, 1, 0), (3, 2, 2, 4, 0),
                                           (1, "same", 1, 4, 0), (2, 0, 1, 1, 1)])
def test_conv1d_and_transpose1d_match_torch(s, p, d, g, pad):
    rng = np.random.default_rng(3)
    x, w, b = _arrays(rng, (2, 4, 17), (8, 4 // g, 4), (8,))
    _parity(lambda x, w, b: conv1d(x, w, b, s, p, d, g), lambda x, w, b: F.conv1d(x, w, b, s, p, d, g), x, w, b)
    if isinstance(p, str):
        return
    wt = rng.standard_normal((4, 8 // g, 4)).astype(np.float32)
    _parity(lambda x, w, b: conv_transpose1d(x, w, b, s, p, pad, g, d),
            lambda x, w, b: F.conv_transpose1d(x, w, b, s, p, pad, g, d), x, wt, b)


def _f64(*arrays):
    return [dw.tensor(a, dtype=dw.float64, requires_grad=True) for a in arrays]


def test_gradcheck_conv2d():
    rng = np.random.default_rng(4)
    x, w, b = _f64(*_arrays(rng, (2, 4, 5, 4), (4, 2, 2, 3), (4,)))
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, (2, 1), (1, 2), (1, 2), 2), (x, w, b))
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, 1, "same", 1, 2), (x, w, b))


def test_gradcheck_conv_transpose2d():
    rng = np.random.default_rng(5)
    x, w, b = _f64(*_arrays(rng, (2, 4, 3, 3), (4, 1, 3, 2), (2,)))
    assert gradcheck(lambda x, w, b: conv_transpose2d(x, w, b, 2, 1, (1, 0), 2, (1, 2)), (x, w, b))


def test_gradcheck_conv1d():
    rng = np.random.default_rng(6)
    x, w, b = _f64(*_arrays(rng, (2, 2, 7), (3, 2, 3), (3,)))
    assert gradcheck(lambda x, w, b: conv1d(x, w, b, 2, 1, 2), (x, w, b))


def _penalty_dw(x, w, b, fn):
    """sum((d sum(tanh(fn(x)) * v) / dx)^2) -- a gradient penalty -- backpropagated to x, w and b."""
    dx, dwt, db = (dw.tensor(a, dtype=dw.float64, requires_grad=True) for a in (x, w, b))
    y = fn(dx, dwt, db).tanh()
    v = dw.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape), dtype=dw.float64)
    (gx,) = dw.autograd.grad((y * v).sum(), [dx], create_graph=True)
    (gx * gx).sum().backward()
    return [t.grad.numpy() for t in (dx, dwt, db)]


def _penalty_torch(x, w, b, fn):
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = fn(tx, tw, tb).tanh()
    v = torch.tensor(np.linspace(-1, 1, y.numel()).reshape(y.shape))
    (gx,) = torch.autograd.grad((y * v).sum(), [tx], create_graph=True)
    (gx * gx).sum().backward()
    return [t.grad.numpy() for t in (tx, tw, tb)]


@pytest.mark.parametrize("transposed", [False, True])
def test_double_backward_matches_torch(transposed):
    rng = np.random.default_rng(7)
    if transposed:
        x, w, b = (a.astype(np.float64) for a in _arrays(rng, (2, 4, 3, 4), (4, 3, 3, 3), (6,)))
        ours = _penalty_dw(x, w, b, lambda x, w, b: conv_transpose2d(x, w, b, 2, 1, 1, 2))
        ref = _penalty_torch(x, w, b, lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1, 2))
    else:
        x, w, b = (a.astype(np.float64) for a in _arrays(rng, (2, 4, 6, 5), (6, 2, 3, 3), (6,)))
        ours = _penalty_dw(x, w, b, lambda x, w, b: conv2d(x, w, b, (2, 1), 1, 1, 2))
        ref = _penalty_torch(x, w, b, lambda x, w, b: F.conv2d(x, w, b, (2, 1), 1, 1, 2))
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-8, atol=1e-10)


def test_weight_grad_op_gradcheck():
    """The op behind double backward (the weight gradient as a function of input and output grad)."""
    from deepwise.ops.conv import _ConvWeightGrad

    rng = np.random.default_rng(8)
    x, g = _f64(*_arrays(rng, (2, 4, 5, 5), (2, 6, 3, 3)))
    settings = ((2, 2), ((1, 1), (1, 1)), (1, 1), 2)
    assert gradcheck(lambda x, g: _ConvWeightGrad.apply(x, g, *settings, (6, 2, 3, 3)), (x, g))


def test_conv2d_keeps_float32_and_casts_input():
    x = dw.tensor(np.ones((1, 1, 4, 4), dtype=np.float64))
    w = dw.tensor(np.ones((1, 1, 3, 3), dtype=np.float32))
    y = conv2d(x, w)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), np.full((1, 1, 2, 2), 9.0, np.float32))


def test_errors_name_op_and_shapes():
    x = dw.zeros(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match=r"conv2d: input of shape \(2, 3, 8, 8\) has 3 channels .*expects 4"):
        conv2d(x, dw.zeros(5, 4, 3, 3))
    with pytest.raises(RuntimeError, match=r"conv2d: kernel size 9 .* larger than the padded input height 8"):
        conv2d(x, dw.zeros(5, 3, 9, 3))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        conv2d(x, dw.zeros(5, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be an int, a tuple of ints, 'same' or 'valid'"):
        conv2d(x, dw.zeros(5, 3, 3, 3), padding="full")
    with pytest.raises(RuntimeError, match=r"out_channels 5 is not divisible by groups=3"):
        conv2d(x, dw.zeros(5, 1, 3, 3), groups=3)
    with pytest.raises(RuntimeError, match=r"bias must have shape \(5,\)"):
        conv2d(x, dw.zeros(5, 3, 3, 3), dw.zeros(4))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        conv2d(x, dw.zeros(5, 3, 3, 3), stride=0)
    with pytest.raises(RuntimeError, match=r"expected a 3-D \(C, H, W\) or 4-D"):
        conv2d(dw.zeros(8, 8), dw.zeros(5, 3, 3, 3))
    with pytest.raises(ValueError, match="output_padding .* must be smaller than stride"):
        conv_transpose2d(x, dw.zeros(3, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match=r"conv_transpose2d: input has 3 channels but the weight \(4, 2, 3, 3\)"):
        conv_transpose2d(x, dw.zeros(4, 2, 3, 3))
    with pytest.raises(RuntimeError, match=r"conv1d: input of shape \(2, 3, 9\) has 3 channels .* expects 2"):
        conv1d(dw.zeros(2, 3, 9), dw.zeros(4, 2, 3))


CHUNK_CASES = [(1, 1, 1, 1), (2, 1, 1, 2), (1, 0, 2, 4), ((1, 2), 0, 1, 1)]  # stride, padding, dilation, groups


@pytest.mark.parametrize("keep", [0, 1 << 30], ids=["rebuild-columns", "keep-columns"])
@pytest.mark.parametrize("case", CHUNK_CASES, ids=[str(i) for i in range(len(CHUNK_CASES))])
def test_chunked_batches_match_torch(monkeypatch, case, keep):
    """Large batches are processed in chunks of images; force one image per chunk and compare, with
    the backward pass reusing the forward's columns or rebuilding them."""
    import deepwise.ops.conv_kernels as conv_module

    monkeypatch.setattr(conv_module, "_host_threads", lambda xp: 0)  # a GPU's big-chunk rules
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_module, "_KEEP_BYTES", keep)
    s, p, d, g = case
    rng = np.random.default_rng(9)
    x, w, b = _arrays(rng, (3, 4, 7, 6), (8, 4 // g, 3, 3), (8,))
    _parity(lambda x, w, b: conv2d(x, w, b, s, p, d, g), lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), x, w, b)
    x, w, b = _arrays(rng, (3, 4, 5, 6), (4, 8 // g, 3, 3), (8,))
    _parity(lambda x, w, b: conv_transpose2d(x, w, b, s, p, 0, g, d),
            lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, 0, g, d), x, w, b)
    # double backward through the chunked kernels too
    x, w, b = (a.astype(np.float64) for a in _arrays(rng, (3, 4, 6, 5), (4, 4 // g, 3, 3), (4,)))
    ours = _penalty_dw(x, w, b, lambda x, w, b: conv2d(x, w, b, s, p, d, g))
    ref = _penalty_torch(x, w, b, lambda x, w, b: F.conv2d(x, w, b, s, p, d, g))
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-8, atol=1e-10)


def test_chained_convs_match_torch():
    """A conv's output is stored channels first behind its NCHW shape; the next ops read it as is."""
    rng = np.random.default_rng(10)
    x, w1, w2, w3, w4 = _arrays(rng, (3, 2, 9, 8), (4, 2, 3, 3), (6, 4, 3, 3), (6, 3, 2, 2), (6, 6, 1, 1))

    def run(lib, conv, convt, tensors):
        x, w1, w2, w3, w4 = tensors
        y = conv(x, w1, None, 1, 1).relu()
        assert lib is torch or y.array.strides[1] > y.array.strides[0]
        y = conv(y, w2, None, 2, 1)
        y = convt(y, w3, None, 2, 0, 1, 2)
        y = conv(y, w4, None, 1, 0)
        return (y * y).sum()

    ours = [dw.tensor(a, requires_grad=True) for a in (x, w1, w2, w3, w4)]
    ref = [torch.tensor(a, requires_grad=True) for a in (x, w1, w2, w3, w4)]
    run(dw, conv2d, conv_transpose2d, ours).backward()
    run(torch, F.conv2d, F.conv_transpose2d, ref).backward()
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a.grad.numpy(), r.grad.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("keep", [0, 1 << 30], ids=["rebuild-columns", "keep-columns"])
def test_second_derivatives_of_every_input_in_chunks(monkeypatch, keep):
    """Both gradients at once (the fused pairs behind conv2d's and conv_transpose2d's backward), one
    image per chunk: second derivatives by finite differences and against PyTorch."""
    import deepwise.ops.conv_kernels as conv_module
    from parity.helpers import check_double_backward

    monkeypatch.setattr(conv_module, "_host_threads", lambda xp: 0)  # a GPU's big-chunk rules
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(conv_module, "_KEEP_BYTES", keep)
    rng = np.random.default_rng(11)
    arrays = [a.astype(np.float64) for a in _arrays(rng, (3, 4, 5, 4), (4, 2, 3, 3), (4,))]
    check_double_backward(arrays, lambda x, w, b: conv2d(x, w, b, 1, 1, 1, 2),
                          lambda x, w, b: F.conv2d(x, w, b, 1, 1, 1, 2))
    arrays = [a.astype(np.float64) for a in _arrays(rng, (3, 4, 3, 3), (4, 2, 3, 3), (4,))]
    check_double_backward(arrays, lambda x, w, b: conv_transpose2d(x, w, b, 2, 1, 1, 2),
                          lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1, 2))


def test_chunk_plan_follows_the_thread_count(monkeypatch):
    """NumPy: cache-sized chunks; with several threads a multiple of the thread count of them (one
    group per thread), unless the columns are too few to share; a GPU, and several threads where
    the pool cannot run: big chunks (BLAS's threads share each GEMM), columns kept."""
    import deepwise.ops.conv_kernels as conv_module
    from deepwise import threads

    per_image = 32 * 9 * 16 * 18 * 4  # the columns of one (32, 16, 16) image, 3x3 kernel, wide rows
    plans = {}
    for ready in (False, True):
        monkeypatch.setattr(threads, "pool_ready", lambda ready=ready: ready)
        for t in (0, 1, 2, 3):
            monkeypatch.setattr(conv_module, "_host_threads", lambda xp, t=t: t)
            plans[t, ready] = conv_module._chunks(64, 32, (3, 3), (16, 16), 18, 4, np)
            tiny = conv_module._chunks(4, 1, (3, 3), (4, 4), 6, 4, np)  # 1.7 KB of columns
            assert tiny[0] == [(0, 4)] and tiny[2] == 1  # one chunk on the calling thread
    images = conv_module._CHUNK_BYTES_SMALL // per_image
    for t in (1, 2, 3):
        chunks, keep, workers = plans[t, True]
        assert workers == t and not keep and max(b - a for a, b in chunks) <= images
        assert len(chunks) % t == 0
    assert plans[1, False] == plans[1, True]  # one thread: no pool needed
    for t in (0, 2, 3):  # a GPU, or several BLAS threads without the pool: big chunks, columns kept
        assert plans[t, False] == plans[0, True]
    assert plans[1, True][0][0] == (0, images)
    assert plans[0, True][0][0] == (0, min(64, conv_module._CHUNK_BYTES // per_image))
    assert plans[0, True][1:] == (True, 1)
    for chunks, _, _ in plans.values():  # the chunks cover the batch once, in order
        assert chunks[0][0] == 0 and chunks[-1][1] == 64
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))


@pytest.fixture
def restore_threads():
    from deepwise import threads

    if not threads.blas_libraries():
        pytest.skip("no BLAS library found whose thread count can be set")
    before = threads.get_num_threads()
    yield
    threads.set_num_threads(before)


@pytest.fixture
def two_threads(restore_threads, monkeypatch):
    """Two threads and the intra-op pool on (even if an earlier test left a thread behind)."""
    from deepwise import threads

    threads.set_num_threads(2)
    monkeypatch.setattr(threads, "pool_ready", lambda: bool(threads._respin))


@pytest.mark.parametrize("case", CHUNK_CASES, ids=[str(i) for i in range(len(CHUNK_CASES))])
@pytest.mark.parametrize("batch", [2, 5, 7])
def test_chunks_on_two_threads_match_torch(monkeypatch, two_threads, case, batch):
    """The intra-op pool: an image per chunk, the chunks shared by two threads (odd batches give the
    threads unequal groups); values and gradients as PyTorch's, and the input gradient bit-identical
    to one thread's (each image's is computed whole by one thread)."""
    import deepwise.ops.conv_kernels as conv_module
    from deepwise import threads

    monkeypatch.setattr(conv_module, "_CHUNK_BYTES_SMALL", 1)
    monkeypatch.setattr(conv_module, "_PARALLEL_BYTES", 0)
    s, p, d, g = case
    rng = np.random.default_rng(13)
    x, w, b = _arrays(rng, (batch, 4, 7, 6), (8, 4 // g, 3, 3), (8,))
    _parity(lambda x, w, b: conv2d(x, w, b, s, p, d, g), lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), x, w, b)
    xt, wt, bt = _arrays(rng, (batch, 4, 5, 6), (4, 8 // g, 3, 3), (8,))
    _parity(lambda x, w, b: conv_transpose2d(x, w, b, s, p, 0, g, d),
            lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, 0, g, d), xt, wt, bt)

    def input_grad():
        tx = dw.tensor(x, requires_grad=True)
        conv2d(tx, dw.tensor(w), None, s, p, d, g).sum().backward()
        return tx.grad.numpy().copy()

    two = input_grad()
    threads.set_num_threads(1)
    assert input_grad().tobytes() == two.tobytes()


def test_a_failing_chunk_raises_after_the_others_finish(monkeypatch, two_threads):
    import deepwise.ops.conv_kernels as conv_module
    from deepwise import threads

    if not threads.pool_ready():
        pytest.skip("this BLAS has no idle threads to park: the pool stands aside")

    monkeypatch.setattr(conv_module, "_CHUNK_BYTES_SMALL", 1)
    monkeypatch.setattr(conv_module, "_PARALLEL_BYTES", 0)
    real = conv_module._im2col
    started, finished = [], []

    def flaky(x, *args):
        started.append(threading.get_ident())
        if len(started) == 1:
            raise MemoryError("the first chunk")
        time.sleep(0.02)  # the other thread is still busy when the first chunk fails
        out = real(x, *args)
        finished.append(threading.get_ident())
        return out

    monkeypatch.setattr(conv_module, "_im2col", flaky)
    with pytest.raises(MemoryError, match="the first chunk"):
        conv2d(dw.zeros(6, 2, 5, 5), dw.zeros(3, 2, 3, 3), padding=1)
    assert len(set(started)) == 2  # both threads ran chunks
    assert len(finished) == len(started) - 1  # raised only once no chunk was still running


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("chunk", [None, 1], ids=["whole-batch", "image-per-chunk"])
def test_conv_training_pass_is_bit_identical_run_to_run(monkeypatch, restore_threads, chunk, n_threads):
    """The same inputs give the same bits every run at a fixed thread count (chunked and whole; on
    two threads the chunks are shared by the intra-op pool)."""
    import deepwise.ops.conv_kernels as conv_module
    from deepwise import threads

    if chunk is not None:
        monkeypatch.setattr(conv_module, "_CHUNK_BYTES", chunk)
        monkeypatch.setattr(conv_module, "_CHUNK_BYTES_SMALL", chunk)
        monkeypatch.setattr(conv_module, "_PARALLEL_BYTES", 0)
    threads.set_num_threads(n_threads)
    rng = np.random.default_rng(12)
    x, w, g = _arrays(rng, (9, 8, 12, 11), (16, 8, 3, 3), (9, 16, 12, 11))

    def run():
        tx, tw = dw.tensor(x, requires_grad=True), dw.tensor(w, requires_grad=True)
        y = conv2d(tx, tw, None, 1, 1)
        y.backward(dw.tensor(g))
        return y.detach().numpy().copy(), tx.grad.numpy().copy(), tw.grad.numpy().copy()

    first = run()
    for again in (run(), run()):
        for a, b in zip(first, again):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape,kernel,padding", [((2, 5, 1, 1), 4, 0), ((3, 4, 2, 3), 3, 1), ((2, 3, 1, 2), 5, 2)],
                         ids=["dcgan-first-layer", "half-wasted-rows", "mostly-padding"])
def test_tiny_images_take_the_layout_that_wastes_least(shape, kernel, padding):
    """Stride-1 convs whose wide rows would be mostly thrown away use the general layout; both
    directions (conv2d and conv_transpose2d, so both kernels) match PyTorch either way."""
    import deepwise.ops.conv_kernels as conv_module

    rng = np.random.default_rng(13)
    n, c, h, w_ = shape
    x, w, b = _arrays(rng, shape, (6, c, kernel, kernel), (6,))
    out_w = w_ + 2 * padding - kernel + 1
    if out_w >= 1 and h + 2 * padding - kernel + 1 >= 1:
        _parity(lambda x, w, b: conv2d(x, w, b, 1, padding), lambda x, w, b: F.conv2d(x, w, b, 1, padding), x, w, b)
    xt, wt, bt = _arrays(rng, shape, (c, 6, kernel, kernel), (6,))
    _parity(lambda x, w, b: conv_transpose2d(x, w, b, 1, padding),
            lambda x, w, b: F.conv_transpose2d(x, w, b, 1, padding), xt, wt, bt)
    wide = conv_module._wide_row((n, 6, 1, 4), ((0, 0), (0, 0)), (1, 1), 1)  # 4x4 kernel, 1x1 image: 75% waste
    assert wide is None and conv_module._wide_row((n, 6, 8, 10), ((1, 1), (1, 1)), (1, 1), 10) == 12
