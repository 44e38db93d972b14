"""The double refuses what CuPy refuses, and deepwise's device path works through it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import deepwise as dw
from deepwise import backend
from device import double

xp = double.namespace


def test_implicit_transfers_and_host_mixing_raise_type_error(double_only):
    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    host = np.ones((2, 3))
    for implicit in (lambda: np.asarray(a), lambda: np.array(a), lambda: np.exp(a), lambda: np.sum(a),
                     lambda: a + host, lambda: host * a, lambda: xp.concatenate([a, host]),
                     lambda: xp.add(a, host), lambda: np.testing.assert_allclose(a, host)):
        with pytest.raises(TypeError):
            implicit()
    with pytest.raises(ValueError, match="truth value"):
        bool(a > 1)
    with pytest.raises(AttributeError, match="errstate"):
        xp.errstate  # noqa: B018 - NumPy has it, CuPy does not


def test_explicit_transfers_scalars_and_zero_d_results_work_as_in_cupy(double_only):
    a = xp.asarray(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert isinstance(a, xp.ndarray) and not isinstance(a, np.ndarray) and a.device.id == 0
    np.testing.assert_array_equal(a.get(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(xp.asnumpy(a * 2 + np.float32(1)), np.arange(6.0).reshape(2, 3) * 2 + 1)
    total = xp.sum(a)
    assert isinstance(total, xp.ndarray) and total.ndim == 0 and float(total) == 15.0  # 0-d, not a scalar
    assert isinstance(a[0, 1], xp.ndarray) and a[0, 1].item() == 1.0
    assert bool(a[1, 2] > 4) and a.max().tolist() == 5.0
    a[0] = np.array([7.0, 8.0, 9.0])  # CuPy copies assigned host values over itself
    a[np.array([1])] = 0.0  # and host index arrays
    np.testing.assert_array_equal(a.get(), [[7, 8, 9], [0, 0, 0]])
    out = xp.empty_like(a)
    assert xp.multiply(a, 2, out=out) is out
    xp.add.at(out, (np.array([0, 0]), np.array([1, 1])), 1.0)
    assert out[0, 1].item() == 18.0
    assert copy.deepcopy(a).get().tolist() == a.get().tolist()


def test_arrays_keep_their_device_and_do_not_mix_across_devices(double_only):
    a = xp.asarray(np.ones(3))
    with xp.cuda.Device(1):
        b = xp.asarray(np.ones(3))
        moved = a.copy()  # CuPy copies to the current device
    assert (a.device.id, b.device.id, moved.device.id) == (0, 1, 1)
    assert (b + 1).device.id == 1 and xp.exp(b).device.id == 1
    with pytest.raises(ValueError, match="different devices"):
        a + b
    with pytest.raises(ValueError, match="different devices"):
        xp.add(a, b)


def test_tensors_models_and_gradcheck_run_on_the_double():
    x = dw.randn(5, 4, dtype=dw.float64).to("cuda").requires_grad_()
    w = dw.randn(4, 3, dtype=dw.float64, device="cuda", requires_grad=True)
    assert backend.get_array_module(x.array) is xp and x.is_cuda and str(x.device) == "cuda:0"
    assert dw.autograd.gradcheck(lambda a, b: (a @ b).tanh().sum(dim=1), [x, w])
    model = dw.nn.Sequential(dw.nn.Conv2d(1, 2, 3), dw.nn.ReLU(), dw.nn.Flatten(), dw.nn.Linear(2 * 4 * 4, 3))
    cpu = copy.deepcopy(model)
    model.to("cuda")
    assert all(isinstance(p.array, xp.ndarray) for p in model.parameters())
    images = dw.randn(2, 1, 6, 6)
    out_gpu, out_cpu = model(images.to("cuda")), cpu(images)
    assert out_gpu.device == dw.device("cuda")
    np.testing.assert_allclose(out_gpu.detach().cpu().numpy(), out_cpu.detach().numpy(), rtol=1e-5, atol=1e-6)
    out_gpu.sum().backward()
    out_cpu.sum().backward()
    for p, q in zip(model.parameters(), cpu.parameters()):
        assert p.grad.device == dw.device("cuda")
        np.testing.assert_allclose(p.grad.cpu().numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6)
    state = model.state_dict()
    cpu.load_state_dict({k: v.cpu() for k, v in state.items()})
    np.testing.assert_array_equal(cpu[0].weight.detach().numpy(), model[0].weight.detach().cpu().numpy())


def test_a_host_tensor_mixed_with_a_cuda_tensor_is_a_clear_error():
    with pytest.raises(RuntimeError, match="different devices"):
        dw.ones(3) * dw.ones(3, device="cuda")


def _trainer(device, seed=1):
    dw.manual_seed(seed)
    model = dw.nn.Sequential(dw.nn.Linear(6, 16), dw.nn.ReLU(), dw.nn.Linear(16, 3))
    return dw.Trainer(model, dw.optim.Adam(model.parameters(), lr=0.01), loss="cross_entropy", device=device)


def test_a_checkpoint_written_on_the_device_resumes_on_the_cpu_and_back(tmp_path):
    data = np.random.default_rng(2)
    x = data.standard_normal((64, 6)).astype(np.float32)
    y = x[:, :3].argmax(1)

    def fit(trainer, epochs, **kw):
        return trainer.fit(x, y, epochs=epochs, batch_size=16, verbose=0, checkpoint_every="epoch", **kw)

    ref = _trainer("cpu")
    ref_hist = fit(ref, 6, checkpoint_dir=tmp_path / "ref")
    on_gpu = _trainer("cuda")
    fit(on_gpu, 2, checkpoint_dir=tmp_path / "gpu")
    assert all(backend.is_device_array(p.array) for p in on_gpu.model.parameters())
    on_cpu = _trainer("cpu", seed=7)  # other weights: the checkpoint must replace them
    fit(on_cpu, 4, resume_from=tmp_path / "gpu", checkpoint_dir=tmp_path / "cpu")
    back = _trainer("cuda", seed=8)
    hist = fit(back, 6, resume_from=tmp_path / "cpu", checkpoint_dir=tmp_path / "back")
    assert all(backend.is_device_array(p.array) for p in back.model.parameters())
    for p, q in zip(back.model.parameters(), ref.model.parameters()):
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hist.history["loss"][-2:], ref_hist.history["loss"][-2:], rtol=1e-5)
