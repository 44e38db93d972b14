"""Every Python block in README.md and docs/*.md runs as written, each in a fresh interpreter.

A block that needs what a plain machine lacks says so on the line above its fence, and is skipped
with that reason when the need is not met:

    <!-- needs: gpu -->        CuPy and a CUDA device
    <!-- needs: graphviz -->   Graphviz's `dot` program
    <!-- needs: torch onnx --> Python packages of extras (here PyTorch, and onnx + onnxruntime)

The README's two long examples are the files examples/pytorch_style.py and keras_style.py, run
(and their results checked) by tests/e2e/test_examples.py; here they are only matched to those files.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = {p.read_text().strip(): p.name for p in (ROOT / "examples").glob("*.py")}
NEEDS = re.compile(r"<!--\s*needs:\s*([\w -]+?)\s*-->")
PACKAGES = {"torch": ["torch"], "onnx": ["onnx", "onnxruntime"]}


def _blocks():
    """(page, line of the fence, code, need or None) for every ```python block."""
    for page in PAGES:
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```python":
                start = i
                j = i + 1
                while j < len(lines) and lines[j].strip() != "```":
                    j += 1
                above = lines[start - 1] if start else ""
                m = NEEDS.search(above)
                code = textwrap.dedent("\n".join(lines[start + 1:j]))  # a block inside a list item is indented
                yield page.relative_to(ROOT).as_posix(), start + 1, code, m and m.group(1)
                i = j
            i += 1


BLOCKS = list(_blocks())
RUN = [b for b in BLOCKS if b[2].strip() not in EXAMPLES]


def _gpu_missing():
    try:
        import cupy

        return None if cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device"
    except Exception:
        return "needs CuPy and a CUDA device"


def _missing(needs):
    for need in (needs or "").split():
        if need == "gpu":
            reason = _gpu_missing()
        elif need == "graphviz":
            reason = None if shutil.which("dot") else "needs Graphviz's `dot` program"
        elif need in PACKAGES:
            absent = [m for m in PACKAGES[need] if importlib.util.find_spec(m) is None]
            reason = f"needs {', '.join(absent)} (pip install {' '.join(absent)})" if absent else None
        else:
            raise AssertionError(f"unknown need {need!r} in a <!-- needs: --> marker")
        if reason:
            return reason
    return None


def test_the_pages_have_python_blocks_and_each_is_run_somewhere():
    assert len(BLOCKS) >= 16
    examples = [b for b in BLOCKS if b not in RUN]
    assert sorted(EXAMPLES[b[2].strip()] for b in examples) == ["keras_style.py", "pytorch_style.py"]


@pytest.mark.parametrize("page,line,code,need", RUN, ids=[f"{b[0]}:{b[1]}" for b in RUN])
def test_block_runs_as_written(page, line, code, need, tmp_path):
    reason = _missing(need)
    if reason:
        pytest.skip(f"{page}:{line} {reason}")
    compile(code, f"{page}:{line}", "exec")  # valid Python, or a SyntaxError naming the page and line
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", DEEPWISE_RUNS=str(tmp_path / "runs"))
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, f"{page}:{line} failed as written:\n{res.stderr[-3000:]}"
