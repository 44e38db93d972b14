"""dw.cuda: PyTorch's torch.cuda names, on the device double and with no CUDA at all."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

import deepwise as dw
from deepwise import backend
from device import double


@pytest.fixture
def no_cuda(monkeypatch):
    """No CUDA module loaded and none to load: CuPy missing, or present without a GPU."""
    def missing():
        raise RuntimeError("device 'cuda' needs CuPy and an NVIDIA GPU")

    previous = backend.set_cuda_module(None)
    monkeypatch.setattr(backend, "cupy_module", missing)
    yield
    backend.set_cuda_module(previous)


def test_without_cuda_the_queries_say_no_and_the_chores_do_nothing(no_cuda):
    assert dw.cuda.is_available() is False
    assert dw.cuda.device_count() == 0
    assert dw.cuda.is_initialized() is False
    assert dw.cuda.memory_allocated() == 0 and dw.cuda.memory_reserved() == 0
    assert dw.cuda.synchronize() is None and dw.cuda.empty_cache() is None
    dw.cuda.manual_seed(3)
    a = dw.rand(4).numpy()
    dw.cuda.manual_seed_all(3)
    np.testing.assert_array_equal(dw.rand(4).numpy(), a)
    for ask in (dw.cuda.current_device, dw.cuda.get_device_name, lambda: dw.cuda.set_device(0)):
        with pytest.raises(RuntimeError, match="no CUDA device is available"):
            ask()
    with pytest.raises(RuntimeError, match="CuPy"):
        dw.ones(2).to("cuda")


def test_the_real_cupy_without_a_gpu_is_not_available():
    """CuPy installs and imports without a GPU; then CUDA is simply not available."""
    pytest.importorskip("cupy")
    previous = backend.set_cuda_module(None)
    try:
        try:
            backend.cupy_module()
            pytest.skip("this machine has a GPU")
        except RuntimeError as exc:
            assert "CuPy and an NVIDIA GPU" in str(exc)
        assert dw.cuda.is_available() is False and dw.cuda.device_count() == 0
        with pytest.raises(RuntimeError, match="CuPy"):
            dw.zeros(3, device="cuda")
    finally:
        backend.set_cuda_module(previous)


def test_on_the_double_the_queries_see_its_two_devices(double_only):
    assert dw.cuda.is_available() and dw.cuda.device_count() == double.DEVICE_COUNT == 2
    assert dw.cuda.is_initialized()
    assert dw.cuda.current_device() == 0
    assert dw.cuda.get_device_name() == "Device double 0"
    assert dw.cuda.get_device_name("cuda:1") == "Device double 1"
    assert dw.cuda.get_device_capability(1) == (9, 0)
    props = dw.cuda.get_device_properties("cuda:1")
    assert props.name == "Device double 1" and props.total_memory == 16 * 2**30 and props.multi_processor_count == 132
    with pytest.raises(ValueError, match="out of range: 2 CUDA device"):
        dw.cuda.get_device_name(2)
    with pytest.raises(ValueError, match="expected a CUDA device"):
        dw.cuda.get_device_name("cpu")


def test_set_device_and_the_device_context_choose_where_cuda_tensors_go(double_only):
    with dw.cuda.device(1):
        assert dw.cuda.current_device() == 1
        t = dw.ones(3, device="cuda")
        assert t.device == dw.device("cuda:1") and str(t.device) == "cuda:1"
    assert dw.cuda.current_device() == 0
    assert dw.ones(3, device="cuda").device == dw.device("cuda:0")
    dw.cuda.set_device("cuda:1")
    assert dw.cuda.current_device() == 1
    assert dw.ones(2).to("cuda").device.index == 1
    dw.cuda.set_device(0)


def test_synchronize_reaches_the_device_and_the_memory_pool_is_read_and_emptied(double_only):
    syncs = double.stats["syncs"]
    dw.cuda.synchronize()
    dw.cuda.synchronize("cuda:1")
    assert double.stats["syncs"] == syncs + 2
    before = dw.cuda.memory_allocated()
    dw.zeros(1000, device="cuda")
    assert dw.cuda.memory_allocated() >= before + 4000 and dw.cuda.memory_reserved() >= dw.cuda.memory_allocated()
    freed = double.namespace.get_default_memory_pool().freed
    dw.cuda.empty_cache()
    assert double.namespace.get_default_memory_pool().freed == freed + 1


def test_manual_seed_makes_cuda_draws_repeat_and_seeds_the_module(double_only):
    dw.cuda.manual_seed(7)
    a = dw.randn(5, device="cuda").cpu().numpy()
    assert double.stats["seed"] == 7
    dw.cuda.manual_seed_all(7)
    b = dw.randn(5, device="cuda").cpu().numpy()
    np.testing.assert_array_equal(a, b)
    dw.manual_seed(7)
    np.testing.assert_array_equal(dw.randn(5).numpy(), a)  # one generator: same draw on every device


def test_device_strings_cuda_n(double_only):
    assert dw.device("cuda:1") == dw.device("cuda", 1) == dw.device(1)
    assert dw.device("cuda") == dw.device("cuda:0")
    assert repr(dw.device("cuda:1")) == "device(type='cuda', index=1)"
    for bad, match in (("cuda:x", "whole number"), ("cuda:-1", ">= 0"), ("cpu:1", "no index"), ("tpu", "unknown")):
        with pytest.raises(ValueError, match=match):
            dw.device(bad)
    t = dw.arange(4.0).to("cuda:1")
    assert t.device == dw.device("cuda:1")
    u = t.to("cuda:0")
    assert u.device == dw.device("cuda:0") and t.device == dw.device("cuda:1")
    np.testing.assert_array_equal(u.cpu().numpy(), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="different devices"):
        t + u
    assert dw.ones(2).cuda(1).device == dw.device("cuda:1") and dw.ones(2).cuda("cuda:1").device.index == 1
    model = dw.nn.Linear(2, 3).cuda(dw.device("cuda", 1))
    assert all(p.device == dw.device("cuda:1") for p in model.parameters())
    assert model(dw.ones(4, 2, device="cuda:1")).device == dw.device("cuda:1")


def test_benchmarks_synchronize_around_each_timed_step(monkeypatch):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
    harness = pytest.importorskip("harness")

    calls = []
    monkeypatch.setattr(dw.cuda, "synchronize", lambda device=None: calls.append("sync"))

    def step():
        calls.append("step")

    monkeypatch.delenv("DEEPWISE_BENCH_ONLY", raising=False)
    harness.time_pair(step, None, repeats=4, warmup=1, blocks=2, settle=0.0)
    # one cold step (memory), one warm-up, then 4 timed steps, each between two synchronizations
    assert calls[:2] == ["step", "step"] and calls[2:] == ["sync", "step", "sync"] * 4


def test_bf16_is_supported_with_a_gpu_and_ml_dtypes_only(monkeypatch):
    pytest.importorskip("ml_dtypes")
    assert dw.cuda.is_bf16_supported() is True  # the double (or real CuPy) serves "cuda"
    monkeypatch.setattr(backend, "_bfloat16", [None])  # ml_dtypes missing
    assert dw.cuda.is_bf16_supported() is False
    monkeypatch.undo()
    previous = backend.set_cuda_module(None)
    monkeypatch.setattr(backend, "cupy_module", lambda: (_ for _ in ()).throw(RuntimeError("no GPU")))
    try:
        assert dw.cuda.is_bf16_supported() is False
    finally:
        backend.set_cuda_module(previous)
