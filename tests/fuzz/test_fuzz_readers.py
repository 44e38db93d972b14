"""Every reader under mutation fuzzing: a short fixed-seed run per reader in the default suite, in a
child process with its address space capped, checking that every input ends in the reader's own
error (or loads) in bounded time and memory; long runs are marked slow; every input the fuzzer ever
found failing is replayed as a regression file."""

from __future__ import annotations

import os

import pytest

from fuzz.harness import Finding, fuzz, run_one, targets
from fuzz.limits import run_bounded

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = sorted(targets())
# imported before the memory cap: torch alone maps more address space than the cap allows
PRELOAD = {"torch": "import torch"}


def _has_seeds(name):
    if not targets()[name].seeds:
        pytest.skip(f"{name}: its seed files need an optional package (PyTorch)")


def _fuzz_in_child(name, n, seed, timeout):
    out = run_bounded(f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        from fuzz.harness import fuzz, targets
        findings, count, slowest = fuzz(targets()[{name!r}], {n}, seed={seed}, max_seconds=3.0)
        result = {{"count": count, "slowest": slowest,
                  "findings": [(f.index, f.error, f.data.hex()) for f in findings[:5]]}}
    """, extra_mb=300, timeout=timeout, preload=PRELOAD.get(name, ""))
    assert not out["timed_out"], f"{name}: the fuzz run did not finish in {timeout} s"
    assert out["error"] is None, f"{name}: {out['error']}: {out['message']}"
    return out


@pytest.mark.parametrize("name", NAMES)
def test_short_fuzz_run(name):
    _has_seeds(name)
    out = _fuzz_in_child(name, n=300, seed=0, timeout=60)
    result = out["result"]
    assert result["count"] == 300
    assert result["findings"] == [], result["findings"]
    assert result["slowest"] < 3.0 and out["rss_mb"] < 200, (result["slowest"], out["rss_mb"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [1, 2])
def test_long_fuzz_run(name, seed):
    _has_seeds(name)
    out = _fuzz_in_child(name, n=20_000, seed=seed, timeout=900)
    assert out["result"]["findings"] == [], out["result"]["findings"]
    assert out["rss_mb"] < 300


# inputs the fuzzer found failing (raw NumPy errors: zero-size IDX shapes whose other dimensions
# multiply past 2**63 bytes), kept as they were found
REGRESSIONS = [
    ("idx", "00000d05000000023fc00000c00000008000000000000000"),
    ("idx", "0000080b000000000000000400000004010102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
    ("idx", "00000d0d01000000023fc00000c00000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000"),
    ("idx", "00000d0e0100000000000000023fc00000c001000001000001000001000001000001000001000001000001000001000001"
            "000001000001000001000001000001000001000001000001000001"),
    ("idx", "0000080300000000e9efea87dbc0ec00"),
    ("idx", "00000d050000000000084100084100023fc00000c0000000"),
    ("idx", "0000080b000000060000000400000004000000000020060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
    ("idx", "0000080b000000020000000000000004000102030405060708090a0b0c0d0e0f101112132015161718191a1b1c1d1e1f"),
    ("idx-gz", "0000080300000000e9efea87dbc0ec00"),
]


@pytest.mark.parametrize("name, hexdata", REGRESSIONS)
def test_regression_inputs(name, hexdata):
    target = targets()[name]
    assert run_one(target, bytes.fromhex(hexdata)) is None
    with pytest.raises(target.allowed):
        target.read(bytes.fromhex(hexdata))


# inputs too long to spell out: tests/fuzz/regressions/<target>-<what>.bin
FILES = sorted(os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")))


@pytest.mark.parametrize("filename", FILES)
def test_regression_files(filename):
    name = next(n for n in sorted(NAMES, key=len, reverse=True) if filename.startswith(n + "-"))
    _has_seeds(name)
    target = targets()[name]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions", filename), "rb") as fh:
        data = fh.read()
    assert run_one(target, data) is None
    with pytest.raises(target.allowed):
        target.read(data)


def test_the_harness_reports_a_reader_that_raises_something_else():
    target = targets()["idx"]
    broken = type(target)(target.name, target.seeds, lambda data: [][1], target.allowed, target.tokens)
    findings, count, _ = fuzz(broken, 5, seed=0)
    assert count == 5 and len(findings) == 5 and isinstance(findings[0], Finding)
    assert findings[0].error.startswith("IndexError")
