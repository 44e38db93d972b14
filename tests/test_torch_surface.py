"""The PyTorch names programs use, next to PyTorch itself: creation, Tensor methods, modes, dtypes,
module paths and device probes (``import deepwise as torch`` must not stop on them)."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

import deepwise as dw
from deepwise import backend

torch = pytest.importorskip("torch")


def test_randint_reads_the_one_bound_form_as_high_and_size():
    dw.manual_seed(0)
    a = dw.randint(3, (500,))
    assert a.shape == (500,) and a.dtype == dw.int64
    assert set(a.numpy().tolist()) == {0, 1, 2}  # torch.randint(3, (500,)): high=3, size=(500,)
    assert torch.randint(3, (500,)).shape == tuple(a.shape)
    b = dw.randint(5, 8, (2, 3))
    assert b.shape == (2, 3) and b.numpy().min() >= 5 and b.numpy().max() < 8
    assert dw.randint(4, size=(7,)).numpy().max() < 4
    g1, g2 = dw.Generator().manual_seed(7), dw.Generator().manual_seed(7)
    assert (dw.randint(0, 100, (9,), generator=g1).numpy() == dw.randint(0, 100, (9,), generator=g2).numpy()).all()
    with pytest.raises(ValueError, match="smaller than high"):
        dw.randint(5, 5, (2,))


def test_multinomial_frequencies_and_rules_match_torch():
    w = [0.1, 0.0, 0.6, 0.3]
    dw.manual_seed(1)
    got = dw.multinomial(dw.tensor(w), 40000, replacement=True).numpy()
    assert got.dtype == np.int64
    freq = np.bincount(got, minlength=4) / got.size
    np.testing.assert_allclose(freq, w, atol=0.01)
    # without replacement: each category at most once per row, zero-weight ones never
    rows = dw.multinomial(dw.tensor([w, w[::-1]]), 3).numpy()
    assert rows.shape == (2, 3)
    for r, weights in zip(rows, [w, w[::-1]]):
        assert len(set(r.tolist())) == 3 and all(weights[i] > 0 for i in r)
    # the first draw without replacement follows the weights too
    first = np.array([dw.multinomial(dw.tensor(w), 2).numpy()[0] for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(first, minlength=4) / 4000, w, atol=0.03)
    for bad, kwargs in [([1.0, -1.0], {}), ([0.0, 0.0], {})]:
        with pytest.raises(RuntimeError):
            torch.multinomial(torch.tensor(bad), 1, **kwargs)
        with pytest.raises(RuntimeError):
            dw.multinomial(dw.tensor(bad), 1, **kwargs)
    with pytest.raises(RuntimeError, match="without replacement"):
        dw.multinomial(dw.tensor(w), 5)


def test_inference_mode_builds_no_graph_as_a_block_and_a_decorator():
    x = dw.ones(3, requires_grad=True)
    with dw.inference_mode():
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    with dw.inference_mode(False):
        assert (x * 2).requires_grad

    @dw.inference_mode()
    def f(t):
        return t * 2

    @dw.inference_mode
    def g(t):
        return t * 3

    assert not f(x).requires_grad and not g(x).requires_grad
    assert dw.is_grad_enabled()


def test_bfloat16_without_ml_dtypes_is_a_name_whose_tensors_say_how_to_get_it(monkeypatch):
    monkeypatch.setattr(backend, "_bfloat16", [None])  # as if ml_dtypes were not installed
    bf16 = dw.bfloat16
    table = {"float32": dw.float32, "bfloat16": bf16, "float16": dw.float16}
    assert table["bfloat16"] is not dw.float32 and dw.float32 != bf16
    with pytest.raises(TypeError, match=r'cannot make bfloat16 tensors.*pip install "deepwise\[bf16\]"'):
        dw.zeros(2, dtype=bf16)
    with pytest.raises(TypeError, match="bfloat16"):
        dw.ones(2).to(bf16)
    with pytest.raises(TypeError, match=r'deepwise\[bf16\]'):
        dw.ones(2).bfloat16()


def test_tensor_methods_match_torch():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(8, dtype=np.float32).reshape(4, 2)
    x, tx = dw.tensor(a), torch.tensor(a)
    np.testing.assert_allclose(x.mm(dw.tensor(b)).numpy(), tx.mm(torch.tensor(b)).numpy())
    for args in [(0, 1, 2), (1, 0, 4), (-1, 1, 2), (1, -3, 2)]:
        np.testing.assert_array_equal(x.narrow(*args).numpy(), tx.narrow(*args).numpy())
    with pytest.raises(IndexError, match="narrow"):
        x.narrow(1, 3, 2)
    np.testing.assert_array_equal(x.t().numpy(), tx.t().numpy())
    assert dw.ones(3).t().shape == (3,)
    with pytest.raises(RuntimeError, match="<= 2 dimensions"):
        dw.ones(2, 2, 2).t()
    h = dw.ones(2, dtype=dw.float64)
    th = torch.ones(2, dtype=torch.float64)
    for name, args in [("new_zeros", ((2, 3),)), ("new_ones", (4,)), ("new_full", ((2,), 7.5)),
                       ("new_tensor", ([1, 2, 3],)), ("new_empty", ((1, 2),))]:
        got, want = getattr(h, name)(*args), getattr(th, name)(*args)
        assert got.shape == tuple(want.shape) and got.dtype == dw.float64, name
        if name != "new_empty":
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert h.new_zeros(2, dtype=dw.int64).dtype == dw.int64
    assert x.is_cuda is False and tx.is_cuda is False
    # narrow and t carry gradients
    w = dw.tensor(a, requires_grad=True)
    tw = torch.tensor(a, requires_grad=True)
    (w.narrow(1, 1, 2).t() * 3).sum().backward()
    (tw.narrow(1, 1, 2).t() * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_format_spec_formats_a_scalar_tensor_like_torch():
    v = 3.14159
    assert f"{dw.tensor(v):.2f}" == f"{torch.tensor(v):.2f}" == "3.14"
    assert format(dw.tensor(7), "d") == format(torch.tensor(7), "d")
    assert f"{dw.ones(2)}" == repr(dw.ones(2))
    with pytest.raises(TypeError, match="shape"):
        format(dw.ones(2), ".2f")


def test_dropout2d_on_2d_input_warns_and_drops_elements():
    layer = dw.nn.Dropout2d(0.5)
    with pytest.warns(UserWarning, match="2-D input"):
        out = layer(dw.ones(64, 64)).numpy()
    assert set(np.unique(out).tolist()) == {0.0, 2.0}
    assert 0.4 < (out == 0).mean() < 0.6 and len({tuple(r) for r in (out == 0)}) > 2  # not whole rows
    with pytest.warns(UserWarning, match=r"\(N, C, L\)"):
        out3 = layer(dw.ones(4, 8, 16)).numpy()
    assert ((out3 == 0).all(axis=2) | (out3 != 0).all(axis=2)).all()  # whole channels, as torch reads 3-D
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(dw.ones(2, 3, 4, 4))
        layer.eval()
        np.testing.assert_array_equal(layer(dw.ones(2, 3, 4, 4)).numpy(), 1.0)


@pytest.mark.parametrize("path", [
    "nn.modules", "nn.modules.conv", "nn.modules.loss", "nn.modules.module", "nn.modules.rnn",
    "nn.modules.utils", "nn.modules.batchnorm", "nn.modules.transformer", "nn.modules.activation",
    "nn.modules.container", "nn.parallel",
    "utils", "utils.data", "utils.data.dataloader", "utils.data.dataset", "utils.data.sampler",
    "utils.data.distributed", "backends", "backends.cudnn", "backends.mps", "accelerator",
    "distributions", "distributions.normal", "distributions.categorical", "distributions.bernoulli",
    "distributions.uniform", "distributions.independent", "distributions.kl", "distributions.distribution",
    "distributions.utils",
])
def test_module_paths_programs_import_from(path):
    ours = importlib.import_module(f"deepwise.{path}")
    theirs = importlib.import_module(f"torch.{path}")
    names = [n for n in getattr(ours, "__all__", []) if not n.startswith("_")]
    for n in names:
        if isinstance(getattr(ours, n), type):
            assert hasattr(theirs, n), f"deepwise.{path}.{n} is not in torch.{path}"


def test_module_path_aliases_are_the_same_objects():
    from deepwise.nn.modules.conv import Conv2d
    from deepwise.nn.modules.utils import _pair
    from deepwise.utils.data.dataloader import DataLoader

    assert Conv2d is dw.nn.Conv2d and DataLoader is dw.data.DataLoader
    assert _pair(3) == (3, 3) and _pair((1, 2)) == (1, 2)


def test_accelerator_and_backend_probes_answer_without_a_gpu():
    gpu = dw.cuda.is_available()
    assert dw.accelerator.is_available() is gpu
    assert dw.accelerator.device_count() == dw.cuda.device_count()
    assert (dw.accelerator.current_accelerator() is None) is (not gpu)
    dw.accelerator.synchronize()
    assert dw.backends.mps.is_available() is False and dw.backends.mps.is_built() is False
    assert dw.backends.cudnn.is_available() is False and dw.backends.cudnn.version() is None
    dw.backends.cudnn.benchmark = True  # programs set these; they are kept
    dw.backends.cuda.matmul.allow_tf32 = True
    assert dw.backends.cudnn.benchmark is True and dw.backends.cuda.matmul.allow_tf32 is True
    dw.backends.cudnn.benchmark = False
    dw.backends.cuda.matmul.allow_tf32 = False
    assert isinstance(dw.backends.cuda.is_built(), bool)


def test_generator_objects_reproduce_draws():
    g = dw.Generator().manual_seed(3)
    first = dw.randperm(10, generator=g).numpy()
    g.manual_seed(3)
    np.testing.assert_array_equal(dw.randperm(10, generator=g).numpy(), first)
    assert g.initial_seed() == 3
    state = g.get_state()
    a = dw.rand(4, generator=g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(dw.rand(4, generator=g).numpy(), a)
    with pytest.raises(TypeError, match="generator"):
        dw.randn(2, generator=5)


def test_legacy_tensor_types_and_variable_behave_as_in_torch():
    for name in ("FloatTensor", "LongTensor", "DoubleTensor", "ByteTensor"):
        ours, theirs = getattr(dw, name), getattr(torch, name)
        a, b = ours(2, 3), theirs(2, 3)
        assert a.shape == tuple(b.shape) and str(a.dtype) == str(b.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours([1, 2]).numpy(), theirs([1, 2]).numpy())
    x = dw.ones(2, dtype=dw.int64).type(dw.FloatTensor)
    assert x.dtype == dw.float32
    v = dw.autograd.Variable(dw.ones(3), requires_grad=True)
    assert isinstance(v, dw.Tensor) and v.requires_grad
    assert dw.ones(2, 5).nelement() == torch.ones(2, 5).nelement() == 10


def test_cuda_legacy_constructors_exist_and_refuse_without_a_gpu_as_torch_does():
    if dw.cuda.is_available() or torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    for name in ("FloatTensor", "LongTensor", "DoubleTensor", "ByteTensor", "HalfTensor"):
        ours, theirs = getattr(dw.cuda, name), getattr(torch.cuda, name)
        assert repr(ours) == repr(theirs) == f"<class 'torch.cuda.{name}'>"
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        for args in ((2, 3), ([1, 2],)):
            with pytest.raises(TypeError, match=f"torch.cuda.{name} not available"):
                theirs(*args)
            with pytest.raises(TypeError, match=f"torch.cuda.{name} not available"):
                ours(*args)
    # the idiom of many programs picks the CPU constructor without touching the GPU one
    Tensor = dw.cuda.FloatTensor if dw.cuda.is_available() else dw.FloatTensor
    assert Tensor(2).dtype == dw.float32


def test_more_cuda_probes_answer_without_a_gpu_as_torch_does():
    if dw.cuda.is_available() or torch.cuda.is_available():
        pytest.skip("a CUDA device is present here")
    for name in ("is_bf16_supported", "max_memory_allocated", "max_memory_reserved", "get_arch_list"):
        assert getattr(dw.cuda, name)() == getattr(torch.cuda, name)(), name
    dw.cuda.reset_peak_memory_stats()  # nothing to reset; PyTorch's CPU build fails here instead
    dw.manual_seed(4)
    state = dw.cuda.get_rng_state()
    a = dw.rand(3).numpy()
    dw.cuda.set_rng_state(state)  # the one generator every device draws from
    np.testing.assert_array_equal(dw.rand(3).numpy(), a)
    assert len(dw.cuda.get_rng_state_all()) == 1


def test_torch_cuda_amp_is_autocast_and_grad_scaler_for_cuda():
    from deepwise.cuda.amp import GradScaler, autocast

    assert dw.cuda.amp.autocast is autocast and isinstance(autocast(), dw.amp.autocast)
    assert isinstance(GradScaler(init_scale=8.0), dw.amp.GradScaler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns that the spelling is deprecated
        ours, theirs = autocast(enabled=False), torch.cuda.amp.autocast(enabled=False)
    with ours, theirs:  # on the CPU, a CUDA autocast leaves float32 matmuls alone in both
        assert (dw.ones(2, 2) @ dw.ones(2, 2)).dtype == dw.float32
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32

    @autocast()
    def f(x):
        return x @ x

    assert f(dw.ones(2, 2)).shape == (2, 2)
    model = dw.nn.Linear(3, 1)
    opt = dw.optim.SGD(model.parameters(), lr=0.1)
    scaler = GradScaler(init_scale=4.0)
    before = model.weight.detach().numpy().copy()
    scaler.scale(model(dw.ones(2, 3)).sum()).backward()
    np.testing.assert_allclose(model.weight.grad.numpy(), 4.0 * 2.0)  # scaled by init_scale
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(model.weight.detach().numpy(), before - 0.1 * 2.0, rtol=1e-6)  # unscaled step
