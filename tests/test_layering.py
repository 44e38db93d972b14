"""Imports point one way, down the layers of the design map, and every subpackage loads first, alone.

The layers, lowest first: backend -> tensor/autograd core -> ops -> nn -> io -> models -> optim
-> data -> text -> train -> diagnostics -> recipes -> cli. A module may import from its own
layer or one below, at module level or inside a function; never from a layer above. The test reads
the source (``ast``), so an import hidden in a function that runs only on an error path counts too.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import deepwise

SRC = pathlib.Path(deepwise.__file__).parent

# first dotted components under deepwise. -> rank (the longest listed prefix wins); a module not
# listed here fails the test (add it). io (file formats, atomic writes) sits low because training
# writes checkpoints and histories with it; models are compositions of layers, below training.
LAYERS = {
    "_malloc": 0, "backend": 0, "backends": 0, "threads": 0,
    "random": 1, "cuda": 1, "accelerator": 1, "tensor": 1, "autograd": 1, "creation": 1,
    "ops": 2,
    "distributed": 2.5,
    "nn": 3,
    "distributions": 3.2,  # torch.distributions: over the ops and nn.functional's losses
    "io": 3.5,
    "models": 3.7,
    "optim": 4, "amp": 4.5,
    "cuda.amp": 4.6,  # torch.cuda.amp: deepwise.amp with the device fixed to "cuda"
    "data": 5, "text": 5.5,
    "train": 6,
    "onnx": 7,
    "diagnostics": 8, "callbacks": 8.5,
    "utils.tensorboard": 7.5,  # the writer and the fit callback: over train and the graph capture of onnx
    "utils.checkpoint": 2,  # activation checkpointing: autograd's Function and the generator only
    "utils": 9,  # torch.utils' module paths over the layers below (data, and tensorboard's writer)
    "recipes": 10,
    "cli": 11, "__main__": 11, "run_script": 11,
}
# inside a layer that is one package, its modules in the order they build on each other
CORE = {"backend": 0, "autograd.mode": 1, "autograd.anomaly": 1, "tensor": 2, "random": 0,
        "autograd.engine": 3, "autograd.function": 4, "autograd.gradcheck": 5, "autograd": 5, "creation": 5}


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join(parts) or "__init__", path


def _imports(path, module):
    """(lineno, imported deepwise-relative module) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("deepwise."):
                    yield node.lineno, alias.name[len("deepwise."):]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("deepwise"):
                name = node.module[len("deepwise."):] if node.module != "deepwise" else ""
            else:
                continue
            for alias in node.names:  # `from package import submodule` imports that submodule
                sub = f"{name}.{alias.name}" if name else alias.name
                folder = SRC.joinpath(*sub.split("."))
                if folder.with_suffix(".py").exists() or folder.is_dir():
                    yield node.lineno, sub
                elif name:
                    yield node.lineno, name


def _rank(name):
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise AssertionError(f"deepwise.{parts[0]} has no layer in tests/test_layering.py: add it to LAYERS")


def _core_rank(name):
    parts = name.split(".")
    return CORE.get(".".join(parts[:2]), CORE.get(parts[0]))


def test_imports_point_down_the_layers():
    wrong = []
    for module, path in _modules():
        if module == "__init__":  # the package itself re-exports every layer
            continue
        for lineno, target in _imports(path, module):
            if target.split(".")[0] == module.split(".")[0] and _rank(module) > 1:
                continue  # within one package above the core
            mine, theirs = _rank(module), _rank(target)
            if theirs > mine:
                wrong.append(f"{path.relative_to(SRC.parent)}:{lineno}: deepwise.{module} (layer {mine}) "
                             f"imports deepwise.{target} (layer {theirs})")
    assert not wrong, "imports that point up the layers:\n" + "\n".join(wrong)


def test_the_core_builds_in_one_order():
    """Inside the tensor/autograd core only the walk and the Tensor refer to each other (the Tensor's
    ``backward`` calls the walk, bound after the class); everything else points down."""
    wrong = []
    for module, path in _modules():
        if _rank(module.split(".")[0] if module != "__init__" else "cli") != 1:
            continue
        for lineno, target in _imports(path, module):
            mine, theirs = _core_rank(module), _core_rank(target)
            if theirs is None or mine is None:
                continue
            if (module, target) == ("tensor", "autograd.engine"):  # bound after the class
                continue
            if theirs > mine:
                wrong.append(f"{path.relative_to(SRC.parent)}:{lineno}: {module} imports {target}")
    assert not wrong, "core imports out of order:\n" + "\n".join(wrong)


def test_no_module_takes_another_modules_private_names():
    wrong = []
    for _module, path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deepwise"):
                home = SRC.joinpath(*node.module.split(".")[1:])
                for alias in node.names:
                    is_module = home.joinpath(alias.name + ".py").exists() or home.joinpath(alias.name).is_dir()
                    if alias.name.startswith("_") and not alias.name.startswith("__") and not is_module:
                        wrong.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: "
                                     f"from {node.module} import {alias.name}")
    assert not wrong, "private names taken from another module:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", ["tensor", "autograd", "ops", "nn", "optim", "data", "train",
                                     "io", "onnx", "diagnostics", "models", "recipes", "cli"])
def test_each_subpackage_imports_first_and_alone(package):
    proc = subprocess.run([sys.executable, "-c", f"import deepwise.{package}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_ops_modules_do_not_leak_into_the_top_namespace():
    import types

    leaked = [n for n in ("shape", "reduce", "index", "arithmetic", "unary", "linalg", "activation", "dual")
              if isinstance(getattr(deepwise, n, None), types.ModuleType)]
    assert not leaked, f"dw.{leaked[0]} is a module of deepwise.ops, not an op"
