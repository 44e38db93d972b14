"""The op tests (PyTorch parity forward, backward, double backward; gradcheck) run again with every
tensor on the device double: an op that mixes host NumPy with device data fails here."""

from __future__ import annotations

import pytest

from device.conftest import rerun_on_double
from ops import (
    test_conv,
    test_double_backward,
    test_ops_arithmetic,
    test_ops_index,
    test_ops_linalg,
    test_ops_nondiff,
    test_ops_reduce,
    test_ops_shape,
    test_ops_unary,
    test_pool,
    test_recurrent,
    test_scatter_add_rows,
)

pytestmark = [pytest.mark.device_double, pytest.mark.usefixtures("cuda_by_default")]

# the first two wrap a host array with Tensor._make on purpose (to test strided and channels-first
# storage), then mix it with tensors made on the device: the mixing is the test's, not the op's; the
# third is about the intra-op pool, which only NumPy's chunks use (a GPU runs big chunks in order)
HOST_ONLY = ("ops_nondiff__gradcheck_perturbs_inputs_stored_with_any_strides", "pool__channels_first_layout_input",
             "conv__a_failing_chunk_raises_after_the_others_finish")

rerun_on_double(globals(), test_conv, test_double_backward, test_ops_arithmetic, test_ops_index, test_ops_linalg,
                test_ops_nondiff, test_ops_reduce, test_ops_shape, test_ops_unary, test_pool, test_recurrent,
                test_scatter_add_rows, host_only=HOST_ONLY)
