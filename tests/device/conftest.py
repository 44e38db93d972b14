"""Every test under tests/device/ runs with the strict device double serving ``"cuda"``.

The double (double.py) is a NumPy-backed array type that refuses what CuPy refuses (implicit
transfers, host arrays mixed with device arrays, NumPy functions on device data), installed through
the backend's seam ``deepwise.backend.set_cuda_module``, so ``tensor.to("cuda")``,
``model.to("cuda")`` and every op run on it.

On a machine with a GPU, ``DEEPWISE_DEVICE_TESTS=cupy python -m pytest -m device_double tests/device``
runs the same tests on real CuPy instead; the few that look inside the double (its transfer
counters, its two devices, its refusals) take the ``double_only`` fixture and are skipped there.
"""

from __future__ import annotations

import importlib
import os

import pytest

from deepwise import backend, creation
from deepwise.nn import parameter
from device import double

tensor_module = importlib.import_module("deepwise.tensor")  # dw.tensor is the factory function


REAL_CUPY = os.environ.get("DEEPWISE_DEVICE_TESTS") == "cupy"


@pytest.fixture(autouse=True)
def cuda_double():
    """The double as the ``"cuda"`` module, on device 0, for the length of one test (real CuPy
    with ``DEEPWISE_DEVICE_TESTS=cupy``; skipped then without a GPU)."""
    if REAL_CUPY:
        try:
            module = backend.cupy_module()
        except RuntimeError as exc:
            pytest.skip(str(exc))
        yield module
        return
    previous = backend.set_cuda_module(double.namespace)
    double._current[0] = 0
    yield double.namespace
    backend.set_cuda_module(previous)


@pytest.fixture
def double_only():
    """For a test that looks inside the double: skipped when the tests run on real CuPy."""
    if REAL_CUPY:
        pytest.skip("looks inside the CuPy double; this run uses real CuPy")


@pytest.fixture
def cuda_by_default(monkeypatch):
    """New tensors land on the double's ``"cuda"`` unless a device is named (as after PyTorch's
    ``set_default_device("cuda")``): factories, ``Tensor(...)``, ``Parameter(...)`` and data moved
    in from the host. Arrays that ops make internally are not moved, so an op that builds a host
    array and mixes it with device data fails here as it would on CuPy."""
    finish, as_array = creation._finish, tensor_module.as_array

    def finish_on_cuda(arr, dtype, device, requires_grad):
        return finish(arr, dtype, "cuda" if device is None else device, requires_grad)

    def as_array_on_cuda(data, dtype=None, device=None, copy=False):
        host = not (isinstance(data, tensor_module.Tensor) or backend.is_device_array(data))
        return as_array(data, dtype, "cuda" if device is None and host else device, copy)

    monkeypatch.setattr(creation, "_finish", finish_on_cuda)
    for module in (tensor_module, creation, parameter):
        monkeypatch.setattr(module, "as_array", as_array_on_cuda)


def rerun_on_double(namespace, *modules, host_only=()):
    """Collect the tests of ``modules`` again inside ``namespace`` (a test module under tests/device/),
    named ``test_<module>__<name>``, so they run with the double as ``"cuda"`` and ``cuda_by_default``.
    Their fixtures come along; ``tests/conftest.py``'s (``rng``, ``torch``) apply everywhere.
    ``host_only`` names (``"<module>__<name>"``) tests that build host tensors on purpose (wrapping a
    NumPy array with ``Tensor._make`` to test its strides, say); they are left out, and the caller
    says why beside the list."""
    left_out = set(host_only)
    for module in modules:
        short = module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        for name, value in vars(module).items():
            if name.startswith("test_") and callable(value):
                key = f"{short}__{name[5:]}"
                if key in left_out:
                    left_out.discard(key)
                    continue
                namespace[f"test_{key}"] = value
            elif hasattr(value, "_fixture_function_marker") or type(value).__name__ == "FixtureFunctionDefinition":
                namespace.setdefault(name, value)
    if left_out:
        raise LookupError(f"host_only names tests that do not exist: {sorted(left_out)}")
