"""The optimizer, scheduler, clipping and training-loop tests run again with the model, its
parameters, the optimizer state and the batches on the device double."""

from __future__ import annotations

import os
import sys

import pytest

_TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train")
if _TRAIN not in sys.path:  # the training tests import train_helpers from their folder
    sys.path.insert(0, _TRAIN)

from deepwise import backend  # noqa: E402
from deepwise.tensor import Tensor  # noqa: E402
from device.conftest import rerun_on_double  # noqa: E402
from optim import (  # noqa: E402
    optim_helpers,
    test_adadelta_lbfgs,
    test_clip,
    test_lr_scheduler,
    test_optimizer_base,
    test_optimizers_parity,
)
from train import (  # noqa: E402
    test_train_callbacks,
    test_train_history_progress,
    test_train_loop_paths,
    test_train_metrics,
    test_train_resume,
    test_train_trainer,
)
from train.conftest import cls_data, trainer_factory  # noqa: E402, F401 - fixtures the training tests take

pytestmark = [pytest.mark.device_double, pytest.mark.usefixtures("cuda_by_default")]

CPU = backend.Device("cpu")


@pytest.fixture(autouse=True)
def gradients_made_on_the_host_then_moved(monkeypatch):
    """The optimizer tests compute their least-squares gradients in NumPy from the parameters' values
    (the same numbers go to PyTorch); here those values come back from the device explicitly, and the
    gradients go to the device before the optimizer sees them, as a GPU user's would."""
    grads_at, assert_match = optim_helpers.grads_at, optim_helpers.assert_params_match

    def device_grads_at(arrays, step, sign=1.0):
        on_device = [backend.is_device_array(a) for a in arrays]
        grads = grads_at([backend.to_device(a, CPU) for a in arrays], step, sign)
        return [backend.to_device(g, backend.Device("cuda")) if d else g for g, d in zip(grads, on_device)]

    def host_assert_params_match(dw_list, torch_list, **kwargs):
        assert all(backend.is_device_array(a.array) for a in dw_list), "the parameters left the device"
        assert_match([Tensor._make(backend.to_device(a.array, CPU)) for a in dw_list], torch_list, **kwargs)

    monkeypatch.setattr(optim_helpers, "grads_at", device_grads_at)
    for module in (optim_helpers, test_adadelta_lbfgs, test_optimizer_base, test_optimizers_parity):
        monkeypatch.setattr(module, "assert_params_match", host_assert_params_match)


# Left out: they set gradients from host arrays (``p.grad = Tensor._make(numpy_array)``) or read raw
# ``.array``s with NumPy (np.shares_memory, np.testing, np.ones_like) -- host work of the test's own
HOST_ONLY = (
    "optimizer_base__base_class_with_required_hyper_parameter", "optimizer_base__params_without_grad_are_skipped",
    "optimizer_base__shared_gradient_array_is_never_written",
    "optimizer_base__state_dict_round_trip_mid_run_continues_identically",
    "optimizer_base__state_dict_survives_json_and_plain_arrays",
    "optimizer_base__step_runs_closure_with_grad_enabled_and_returns_its_loss",
    "optimizer_base__zero_dimensional_parameter_matches_pytorch",
)

rerun_on_double(globals(), test_adadelta_lbfgs, test_clip, test_lr_scheduler, test_optimizer_base,
                test_optimizers_parity, test_train_callbacks, test_train_history_progress, test_train_loop_paths,
                test_train_metrics, test_train_resume, test_train_trainer, host_only=HOST_ONLY)
