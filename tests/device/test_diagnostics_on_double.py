"""The diagnostics tests (gradient health, overfitting advice, features, graphs, summaries, anomaly
mode) run again with the models they watch on the device double: diagnostics read device tensors."""

from __future__ import annotations

import pytest

from device.conftest import rerun_on_double
from diagnostics import (
    test_diag_anomaly,
    test_diag_features,
    test_diag_gradients,
    test_diag_graph,
    test_diag_overfitting,
    test_diag_summary,
)
from diagnostics.conftest import digits  # noqa: F401 - the fixture the tests take

pytestmark = [pytest.mark.device_double, pytest.mark.usefixtures("cuda_by_default")]

# left out: it recomputes the expected norms with np.linalg.norm on the parameters' raw arrays (host work
# of the test's own; the monitor under it runs here in the other gradient tests)
HOST_ONLY = ("diag_gradients__records_match_hand_computed_norms_and_update_ratios",)

rerun_on_double(globals(), test_diag_anomaly, test_diag_features, test_diag_gradients, test_diag_graph,
                test_diag_overfitting, test_diag_summary, host_only=HOST_ONLY)
