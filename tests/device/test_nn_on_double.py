"""The layer and loss tests (PyTorch parity with the same weights, gradients, state dicts) run again
with every tensor and parameter on the device double."""

from __future__ import annotations

import pytest

from device.conftest import rerun_on_double
from nn import (
    test_attention,
    test_conv_layers,
    test_init,
    test_layers,
    test_losses,
    test_module,
    test_norm,
    test_recurrent_layers,
    test_transformer,
)

pytestmark = [pytest.mark.device_double, pytest.mark.usefixtures("cuda_by_default")]

# Left out, each for a reason of the test's own making (the layer code under them runs here):
HOST_ONLY = (
    # they read a parameter's raw ``.array`` with NumPy (np.abs, np.all, np.testing, ``w @ w.T`` against
    # a host np.eye): on a device that raw array is a device array, and NumPy refuses it, as with CuPy
    "init__kaiming_variances", "init__orthogonal", "init__sparse_zeroes_a_share_of_each_column",
    "init__uniform_normal_constant_fills", "init__xavier_variances",
    "layers__embedding_matches_torch_with_repeated_indices", "layers__linear_layout_and_default_init_bounds",
    "layers__prelu_weight_is_a_parameter_in_the_state_dict", "module__deepcopy_gives_independent_parameters",
    "module__load_state_dict_copies_into_existing_arrays", "module__load_state_dict_non_strict_returns_the_keys",
    "module__load_state_dict_reports_every_problem_and_loads_nothing",
    "module__parameters_to_vector_round_trip_and_clip_reexports", "module__zero_grad_and_requires_grad",
    # they compare a repr with PyTorch's CPU repr; on a device the repr adds device='cuda:0', as torch's does
    "module__parameter_is_leaf_float32_and_shares_tensor_data", "module__parameter_repr_matches_torch",
    # they hand the layer a host input (Tensor._make of a strided NumPy array) or host running statistics
    "norm__batchnorm2d_on_a_conv_output_layout_matches_torch", "norm__gradcheck_batch_norm_on_a_conv_output_layout",
    "norm__gradcheck_batch_norm_train_and_eval",
)

rerun_on_double(globals(), test_attention, test_conv_layers, test_init, test_layers, test_losses, test_module,
                test_norm, test_recurrent_layers, test_transformer, host_only=HOST_ONLY)
