"""Damaged and crafted checkpoints: each gives a CheckpointError naming the file and what is wrong
(never a KeyError, TypeError or RecursionError), in bounded time."""

import json
import time

import numpy as np
import pytest

import deepwise as dw
from deepwise.io import CheckpointError, SafetensorsError, load_checkpoint
from deepwise.io.checkpoint import MAX_JSON_DEPTH, json_depth, loads_json
from deepwise.io.safetensors import load_file_with_metadata, save_file
from deepwise.train import Trainer
from deepwise.train.checkpoint import load_training_checkpoint


def _real_checkpoint(tmp_path):
    """A checkpoint written by Trainer.fit (one epoch of a tiny model)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    model = dw.nn.Linear(3, 2)
    trainer = Trainer(model, dw.optim.Adam(model.parameters(), lr=0.01), loss="cross_entropy")
    trainer.fit(x, y, epochs=1, batch_size=8, verbose=0, checkpoint_dir=tmp_path / "run")
    return tmp_path / "run" / "last.ckpt"


def _rewrite(path, change):
    """The same checkpoint with its JSON passed through ``change(meta)`` (and ``arrays`` kept)."""
    arrays, metadata = load_file_with_metadata(path)
    meta = json.loads(metadata["deepwise"])
    change(meta, arrays)
    save_file(arrays, path, {**metadata, "deepwise": json.dumps(meta)})


def test_a_trainer_checkpoint_reads_back(tmp_path):
    ck = load_training_checkpoint(_real_checkpoint(tmp_path))
    assert ck.position["epoch"] == 1 and set(ck.model) == {"weight", "bias"}


@pytest.mark.parametrize("field", ["settings", "objects", "model_keys", "position", "rng_state", "history"])
def test_missing_fields_name_the_file_and_the_field(tmp_path, field):
    path = _real_checkpoint(tmp_path)
    _rewrite(path, lambda meta, arrays: meta.pop(field))
    with pytest.raises(CheckpointError) as info:
        load_training_checkpoint(path)
    assert str(info.value).startswith(f"{path}: the checkpoint has no {field!r} field")


@pytest.mark.parametrize("change, phrase", [
    (lambda m, a: m.update(settings=[1, 2]), "the checkpoint's 'settings' field is a list, expected a JSON object"),
    (lambda m, a: a.pop("model/weight"), "lists the model weight 'weight' but holds no tensor 'model/weight'"),
    (lambda m, a: m["model_keys"].append(7), "lists the model weight 7 but holds no tensor"),
    (lambda m, a: m["position"].update(epoch="1"), "'position' needs a non-negative integer 'epoch', got '1'"),
    (lambda m, a: m["position"].pop("global_step"), "integer 'global_step', got None"),
    (lambda m, a: m["rng_state"].update(bit_generator="seed"), "bit_generator one of PCG64"),
    (lambda m, a: m["objects"]["optimizer"].update(state={"__array__": ["x"]}), "refers to an array a list"),
    (lambda m, a: m["objects"]["optimizer"].update(state={"__array__": "nope"}), "refers to an array 'nope'"),
    (lambda m, a: m["objects"]["optimizer"].update(state={"__dict__": 3}), "not stored as [key, value] pairs"),
    (lambda m, a: m["objects"]["optimizer"].update(state={"__dict__": [[[1], 2]]}), "[key, value] pairs"),
    (lambda m, a: m["objects"]["optimizer"].update(state={"__tuple__": 3}), "stored as a int, not a list"),
    (lambda m, a: m.update(version=99), "trainer checkpoint version 99"),
])
def test_damaged_fields_give_checkpoint_errors(tmp_path, change, phrase):
    path = _real_checkpoint(tmp_path)
    _rewrite(path, change)
    with pytest.raises(CheckpointError) as info:
        load_training_checkpoint(path)
    assert str(info.value).startswith(str(path)) and phrase in str(info.value), str(info.value)


def test_deeply_nested_metadata_is_refused_without_recursion(tmp_path):
    path = tmp_path / "deep.ckpt"
    depth = 200_000
    save_file({}, path, {"format": "deepwise-checkpoint", "deepwise": "[" * depth + "]" * depth})
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=f"nests {depth} levels deep, more than the {MAX_JSON_DEPTH}"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 2
    with pytest.raises(CheckpointError, match="nests 200000 levels deep"):
        load_training_checkpoint(path)


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth('{"a": [1, {"b": "[[[[\\" ]]"}]}') == 3
    assert json_depth("7") == 0 and json_depth("") == 0
    assert json_depth("[" * 5000) == 5000
    assert loads_json('{"a": ["[{"]}', "f", "x") == {"a": ["[{"]}
    with pytest.raises(CheckpointError, match="f: x is not valid JSON"):
        loads_json("{", "f", "x")


def test_checkpoint_errors_are_safetensors_and_value_errors(tmp_path):
    assert issubclass(CheckpointError, SafetensorsError) and issubclass(CheckpointError, ValueError)
    path = tmp_path / "w.safetensors"
    save_file({"a": np.zeros(2, np.float32)}, path)
    with pytest.raises(CheckpointError, match="not a deepwise checkpoint"):
        load_checkpoint(path)
