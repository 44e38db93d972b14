"""Every ``xp.<name>`` the source calls exists in CuPy's namespace, so a typo or a NumPy-only
function in op code is caught here, without a GPU (CuPy imports without one; the test extra has it).

The scan reads the source (``ast``): any attribute chain rooted at a name ``xp`` or an attribute
``.xp`` (``self.xp.concatenate``), such as ``xp.add.at`` or ``xp.lib.stride_tricks.as_strided``.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

import deepwise

SRC = pathlib.Path(deepwise.__file__).parent


def _chain(node):
    """``xp.a.b`` -> "a.b" when the chain is rooted at ``xp`` / ``<something>.xp``, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        if node.attr == "xp" and parts:
            return ".".join(reversed(parts))
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "xp" and parts:
        return ".".join(reversed(parts))
    return None


def xp_names(source: str, filename: str = "<src>"):
    """{dotted name: first line} for every ``xp.`` attribute chain in ``source`` (and its prefixes)."""
    found = {}
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Attribute):
            name = _chain(node)
            if name is not None:
                found.setdefault(name, node.lineno)
    return found


def _missing(module, names):
    def has(name):
        try:
            functools.reduce(getattr, name.split("."), module)
            return True
        except AttributeError:
            return False

    return sorted(n for n in names if not has(n))


def _source_names():
    names = {}
    for path in sorted(SRC.rglob("*.py")):
        for name, line in xp_names(path.read_text(), str(path)).items():
            names.setdefault(name, f"{path.relative_to(SRC.parent)}:{line}")
    return names


def test_the_scan_finds_chains_and_catches_a_name_cupy_lacks():
    names = xp_names("y = xp.add.at(a, i, b)\nz = self.xp.concatenate(x)\nw = xp.errstate(over='ignore')\n"
                     "v = np.exp(1) + xp.float32(2).item()")
    assert set(names) == {"add", "add.at", "concatenate", "errstate", "float32"}
    numpy = pytest.importorskip("numpy")
    assert _missing(numpy, ["add.at", "concatenate", "no_such_function"]) == ["no_such_function"]


def test_every_xp_name_in_the_source_exists_in_cupy():
    cupy = pytest.importorskip("cupy")
    names = _source_names()
    assert len(names) > 40, f"the scan found only {len(names)} xp. names: is it still reading the source?"
    missing = _missing(cupy, names)
    assert not missing, "xp. names CuPy does not have (a typo, or a NumPy-only function):\n" + "\n".join(
        f"  xp.{n}  ({names[n]})" for n in missing)
    assert _missing(cupy, ["errstate"]) == ["errstate"]  # the check can fail: NumPy has it, CuPy not
