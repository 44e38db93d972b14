"""Files move both ways between deepwise.io and the reference `safetensors` package (and PyTorch)."""

import numpy as np
import pytest

import deepwise.io as dio
from deepwise import backend
from deepwise.io.safetensors import load_bytes, load_file, save_bytes, save_file

st_numpy = pytest.importorskip("safetensors.numpy")
safetensors = pytest.importorskip("safetensors")


def test_our_files_load_in_safetensors(tmp_path, every_dtype, same_bits):
    tensors = every_dtype(seed=2)
    path = tmp_path / "ours.safetensors"
    save_file(tensors, path, metadata={"origin": "deepwise", "ü": "✓"})
    theirs = st_numpy.load_file(str(path))
    assert set(theirs) == set(tensors)
    for name, arr in tensors.items():
        same_bits(np.asarray(theirs[name]), arr)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"origin": "deepwise", "ü": "✓"}
    from_bytes = st_numpy.load(save_bytes(tensors))
    for name, arr in tensors.items():
        same_bits(np.asarray(from_bytes[name]), arr)


def test_their_files_load_here(tmp_path, every_dtype, same_bits):
    tensors = every_dtype(seed=3)
    path = tmp_path / "theirs.safetensors"
    st_numpy.save_file(tensors, str(path), metadata={"format": "np", "k": "v"})
    ours = load_file(path)
    assert list(ours) == list(load_bytes(st_numpy.save(tensors)))
    for name, arr in tensors.items():
        same_bits(ours[name], arr)
    assert dio.read_metadata(path) == {"format": "np", "k": "v"}


def test_bytes_identical_to_reference_writer(every_dtype):
    tensors = every_dtype(seed=4)
    tensors["ünïcode name"] = np.arange(3, dtype=np.float32)
    assert save_bytes(tensors) == st_numpy.save(tensors)
    # (with one metadata entry: the reference keeps metadata in a hash map, so its order varies by run)
    assert save_bytes(tensors, {"format": "np"}) == st_numpy.save(tensors, metadata={"format": "np"})


def _torch_model(torch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 10),
    )
    model.train()
    model(torch.randn(5, 1, 8, 8))  # move the BatchNorm running stats and num_batches_tracked
    return model


def test_torch_state_dict_loads_here(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    sd = _torch_model(torch).state_dict()
    path = tmp_path / "torch.safetensors"
    st_torch.save_file(sd, str(path))
    loaded = dio.load(path)
    assert set(loaded) == set(sd)
    for name, t in sd.items():
        got = loaded[name]
        assert got.dtype == np.dtype(str(t.dtype).replace("torch.", ""))
        np.testing.assert_array_equal(got.numpy(), t.numpy())
    assert loaded["1.num_batches_tracked"].dtype == np.int64 and loaded["1.num_batches_tracked"].item() == 1


def test_our_files_load_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    from deepwise.tensor import Tensor

    source = _torch_model(torch).state_dict()
    ours = {name: Tensor._make(t.numpy() + 1 if t.is_floating_point() else t.numpy() * 7)
            for name, t in source.items()}
    path = tmp_path / "for_torch.safetensors"
    dio.save(ours, path)
    theirs = st_torch.load_file(str(path))
    for name, t in theirs.items():
        np.testing.assert_array_equal(t.numpy(), ours[name].numpy())
        assert t.dtype == source[name].dtype
    model = _torch_model(torch)
    model.load_state_dict(theirs)
    np.testing.assert_array_equal(model[4].weight.detach().numpy(), ours["4.weight"].numpy())
    assert model[1].num_batches_tracked.item() == 7


def test_torch_bf16_file_loads_as_bfloat16_or_is_refused_without_ml_dtypes(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    pytest.importorskip("ml_dtypes")
    path = tmp_path / "bf16.safetensors"
    w = torch.tensor([1.0, -3.140625, 2.0**100], dtype=torch.bfloat16)
    st_torch.save_file({"w": w}, str(path), metadata={"format": "pt"})
    assert dio.read_metadata(path) == {"format": "pt"}
    got = dio.load(path)["w"]
    assert got.dtype == backend.bfloat16_dtype() and got.tolist() == w.tolist()
    monkeypatch.setattr(backend, "_bfloat16", [None])
    with pytest.raises(dio.SafetensorsError, match=r"'w' is BF16, .*without the ml_dtypes package.*deepwise\[bf16\]"):
        dio.load(path)
