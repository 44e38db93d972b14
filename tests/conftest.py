"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

# tests/ on the path, so test modules can `from parity.helpers import helper_test_op` under any import mode
_TESTS = os.path.dirname(os.path.abspath(__file__))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

import deepwise as dw  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_state():
    """Each test starts seeded and with grad mode on, and cannot leak a changed grad mode."""
    dw.manual_seed(0)
    prev = dw.is_grad_enabled()
    dw.set_grad_enabled(True)
    yield
    dw.set_grad_enabled(prev)


@pytest.fixture
def rng():
    """A NumPy generator for test data, independent of deepwise's own generator."""
    return np.random.default_rng(1234)


@pytest.fixture
def torch():
    """PyTorch as the oracle; the test is skipped (not failed) when it is not installed."""
    return pytest.importorskip("torch")
