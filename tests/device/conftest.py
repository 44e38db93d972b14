"""Every test under tests/device/ runs with the strict device double serving ``"cuda"``.

The double (double.py) is a NumPy-backed array type that refuses what CuPy refuses (implicit
transfers, host arrays mixed with device arrays, NumPy functions on device data), installed through
the backend's seam ``deepwise.backend.set_cuda_module``, so ``tensor.to("cuda")``,
``model.to("cuda")`` and every op run on it.
"""

from __future__ import annotations

import pytest

from deepwise import backend
from device import double

pytestmark = pytest.mark.device_double


@pytest.fixture(autouse=True)
def cuda_double():
    """The double as the ``"cuda"`` module, on device 0, for the length of one test."""
    previous = backend.set_cuda_module(double.namespace)
    double._current[0] = 0
    yield double.namespace
    backend.set_cuda_module(previous)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/device/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.device_double)
