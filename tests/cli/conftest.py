"""A small trained run shared by the command-line tests."""

from __future__ import annotations

import pytest

from cli.helpers import run


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mlp"
    res = run("train", "digits-mlp", "--epochs", "2", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    return out, res
