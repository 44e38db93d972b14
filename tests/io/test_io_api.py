"""deepwise.io.save / load (dw.save / dw.load) and the checkpoint files the training loop writes."""

import json
import math
import os

import numpy as np
import pytest

import deepwise.io as dio
from deepwise.io import SafetensorsError
from deepwise.io.safetensors import load_file, save_file


def make_state_dict():
    from deepwise.tensor import Tensor

    rng = np.random.default_rng(0)
    weight = Tensor._make(rng.standard_normal((4, 3)).astype(np.float32))
    weight.requires_grad = True  # a parameter: saved as its values, no graph
    return {
        "fc.weight": weight,
        "fc.bias": Tensor._make(rng.standard_normal(4).astype(np.float32)),
        "bn.running_mean": Tensor._make(np.zeros(4, np.float32)),
        "bn.num_batches_tracked": Tensor._make(np.array(12, np.int64)),
        "table": np.arange(6, dtype=np.float64).reshape(2, 3),  # plain arrays are accepted too
    }


def test_save_load_round_trip_keeps_values_dtypes_and_order(tmp_path):
    from deepwise.tensor import Tensor

    sd = make_state_dict()
    path = tmp_path / "sub" / "model.safetensors"
    dio.save(sd, path, metadata={"arch": "mlp"})
    loaded = dio.load(path)
    assert list(loaded) == list(dio.read_header(path))
    assert set(loaded) == set(sd)
    for name, value in sd.items():
        t = loaded[name]
        assert isinstance(t, Tensor) and not t.requires_grad and t.grad is None
        expected = value.array if isinstance(value, Tensor) else value
        assert t.dtype == expected.dtype and t.shape == expected.shape
        np.testing.assert_array_equal(t.numpy(), expected)
    count = loaded["bn.num_batches_tracked"]
    assert count.dtype == np.int64 and count.shape == () and count.item() == 12
    assert str(loaded["fc.weight"].device) == "cpu"
    assert dio.read_metadata(path) == {"arch": "mlp"}
    # loaded tensors own their memory: changing one does not change the saved source
    loaded["fc.bias"].array += 1
    np.testing.assert_array_equal(dio.load(path)["fc.bias"].numpy(), sd["fc.bias"].array)


def test_load_order_is_the_file_header_order(tmp_path):
    save_file({"b": np.zeros(1, np.float32), "a": np.zeros(1, np.float32), "c": np.zeros(1, np.int64)},
              tmp_path / "o")
    assert list(dio.load(tmp_path / "o")) == ["c", "a", "b"]


def test_save_stores_nested_dicts_with_their_numbers(tmp_path):
    sd = {"w": np.zeros(2, np.float32), "optimizer": {"lr": 0.1}}
    dio.save(sd, tmp_path / "x")
    back = dio.load(tmp_path / "x")
    assert back["optimizer"] == {"lr": 0.1} and back["w"].dtype == np.float32


@pytest.mark.parametrize("value", [1.5, [1.0, 2.0], "text", None])
def test_save_round_trips_plain_values(tmp_path, value):
    dio.save({"v": value}, tmp_path / "x")
    assert dio.load(tmp_path / "x") == {"v": value}


def test_save_refuses_a_model_and_unstorable_values(tmp_path):
    class FakeModel:
        def state_dict(self):
            return {}

    with pytest.raises(TypeError, match=r"dw.save\(model.state_dict\(\), path\)"):
        dio.save(FakeModel(), tmp_path / "x")
    with pytest.raises(TypeError, match="'m' is a FakeModel; save its state_dict"):
        dio.save({"m": FakeModel()}, tmp_path / "x")
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        dio.save({(0, 1): np.zeros(1)}, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    dio.save([np.zeros(1)], tmp_path / "l")
    assert isinstance(dio.load(tmp_path / "l"), list)


def test_load_rejects_unknown_device_before_reading(tmp_path):
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        dio.load(tmp_path / "does-not-exist", device="tpu")


@pytest.mark.gpu
def test_load_to_cuda(tmp_path):
    cupy = pytest.importorskip("cupy")
    dio.save({"w": np.arange(3, dtype=np.float32), "n": np.array(2, np.int64)}, tmp_path / "g")
    loaded = dio.load(tmp_path / "g", device="cuda")
    assert isinstance(loaded["w"].array, cupy.ndarray) and str(loaded["w"].device).startswith("cuda")
    np.testing.assert_array_equal(cupy.asnumpy(loaded["w"].array), [0, 1, 2])
    assert loaded["n"].dtype == np.int64
    # and back: saving CUDA tensors writes their values
    dio.save(loaded, tmp_path / "g2")
    np.testing.assert_array_equal(load_file(tmp_path / "g2")["w"], [0, 1, 2])


def test_checkpoint_round_trip(tmp_path):
    from deepwise import random as dw_random

    dw_random.manual_seed(123)
    arrays = {
        "model.fc.weight": np.ones((2, 2), np.float32),
        "optim.state.0.exp_avg": np.full((2, 2), 0.5, np.float32),
        "optim.state.0.step": np.array(7, np.int64),
    }
    meta = {"epoch": 4, "best": {"val_loss": 0.25, "epoch": 3}, "history": {"loss": [1.0, 0.5]},
            "rng": dw_random.get_rng_state(), "never": math.inf, "name": "ünïcode"}
    path = tmp_path / "ckpt" / "last.safetensors"
    dio.save_checkpoint(path, arrays, meta)
    got_arrays, got_meta = dio.load_checkpoint(path)
    assert got_meta == meta
    assert list(got_arrays) == list(dio.read_header(path))
    for name, arr in arrays.items():
        assert got_arrays[name].dtype == arr.dtype
        np.testing.assert_array_equal(got_arrays[name], arr)
    # the generator state survives the trip: restoring it replays the same numbers
    first = dw_random.generator().standard_normal(3)
    dw_random.set_rng_state(got_meta["rng"])
    np.testing.assert_array_equal(dw_random.generator().standard_normal(3), first)
    # metadata is plain safetensors metadata, and the weights are an ordinary weight file
    md = dio.read_metadata(path)
    assert md["format"] == "deepwise-checkpoint" and json.loads(md["deepwise"])["epoch"] == 4
    assert dio.load(path)["optim.state.0.step"].item() == 7


def test_checkpoint_accepts_tensors(tmp_path):
    from deepwise.tensor import Tensor

    dio.save_checkpoint(tmp_path / "c", {"w": Tensor._make(np.arange(3, dtype=np.float32))}, {"step": 1})
    arrays, meta = dio.load_checkpoint(tmp_path / "c")
    np.testing.assert_array_equal(arrays["w"], [0, 1, 2])
    assert meta == {"step": 1}


def test_checkpoint_meta_must_be_json_and_a_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "c.safetensors"
    dio.save_checkpoint(path, {"w": np.zeros(2, np.float32)}, {"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="JSON-serialisable"):
        dio.save_checkpoint(path, {"w": np.ones(2, np.float32)}, {"epoch": 2, "model": object()})
    with pytest.raises(TypeError, match="meta must be a dict"):
        dio.save_checkpoint(path, {"w": np.ones(2, np.float32)}, [1, 2])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.safetensors"]


def test_load_checkpoint_of_a_plain_weight_file_says_so(tmp_path):
    dio.save({"w": np.zeros(2, np.float32)}, tmp_path / "w.safetensors")
    with pytest.raises(SafetensorsError, match="not a deepwise checkpoint.*dw.load"):
        dio.load_checkpoint(tmp_path / "w.safetensors")


def test_load_checkpoint_with_broken_json(tmp_path):
    save_file({"w": np.zeros(1, np.float32)}, tmp_path / "b", metadata={"deepwise": "{not json"})
    with pytest.raises(SafetensorsError, match="not valid JSON"):
        dio.load_checkpoint(tmp_path / "b")
    save_file({"w": np.zeros(1, np.float32)}, tmp_path / "b", metadata={"deepwise": "[1, 2]"})
    with pytest.raises(SafetensorsError, match="expected a JSON object"):
        dio.load_checkpoint(tmp_path / "b")
