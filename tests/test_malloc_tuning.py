"""deepwise keeps freed pages mapped (glibc mallopt) unless DEEPWISE_MALLOC_TUNING=0."""

import subprocess
import sys

import pytest

import deepwise as dw

_PROBE = "import json, deepwise; print(json.dumps(deepwise.backend.malloc_tuning()))"


def _probe(env_value=None):
    import json
    import os

    env = dict(os.environ)
    env.pop("DEEPWISE_MALLOC_TUNING", None)
    if env_value is not None:
        env["DEEPWISE_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only glibc's malloc is tuned")
def test_import_sets_the_thresholds_on_glibc():
    state = _probe()
    if not state["applied"]:
        pytest.skip(f"not tuned here: {state['reason']}")
    assert state == {"applied": True, "mmap_threshold": 32 * 2**20, "trim_threshold": 256 * 2**20, "reason": ""}


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_environment_variable_opts_out(value):
    state = _probe(value)
    assert state["applied"] is False and state["reason"] == "DEEPWISE_MALLOC_TUNING=0"


def test_state_is_reported_in_process():
    state = dw.backend.malloc_tuning()
    assert set(state) == {"applied", "mmap_threshold", "trim_threshold", "reason"}
    assert state["applied"] == (state["mmap_threshold"] is not None)
