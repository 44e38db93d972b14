"""The safetensors format written and read by deepwise.io.safetensors: round trips and layout."""

import json
import struct

import numpy as np
import pytest

from deepwise.io import SafetensorsError, read_header, read_metadata
from deepwise.io.safetensors import load_bytes, load_file, save_bytes, save_file


@pytest.mark.parametrize("via", ["file", "bytes"])
def test_round_trip_every_dtype_and_shape(tmp_path, via, every_dtype, same_bits):
    tensors = every_dtype()
    if via == "file":
        save_file(tensors, tmp_path / "t.safetensors")
        out = load_file(tmp_path / "t.safetensors")
    else:
        out = load_bytes(save_bytes(tensors))
    assert set(out) == set(tensors)
    for name, arr in tensors.items():
        assert isinstance(arr, np.ndarray)
        got = out[name]
        same_bits(got, arr)
        assert got.dtype.isnative and got.flags.c_contiguous and got.flags.writeable
        assert got.base is None or got.base.base is None  # owns its memory, not a view of the file
    # writeable and independent: changing one array leaves the others alone
    out["float32_4"][...] = 0
    same_bits(out["float64_4"], tensors["float64_4"])


def test_loaded_arrays_do_not_share_memory(tmp_path):
    save_file({"a": np.arange(4, dtype=np.float32), "b": np.arange(4, dtype=np.float32)}, tmp_path / "x")
    for out in (load_file(tmp_path / "x"), load_bytes((tmp_path / "x").read_bytes())):
        assert not np.shares_memory(out["a"], out["b"])
        out["a"] += 1
        np.testing.assert_array_equal(out["b"], np.arange(4, dtype=np.float32))


def test_non_contiguous_and_big_endian_inputs(tmp_path):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    tensors = {
        "transposed": base.T,
        "strided": base[::2, 1::3],
        "big_endian": base.astype(">f4"),
        "big_int": np.arange(5, dtype=">i8"),
    }
    out = load_bytes(save_bytes(tensors))
    for name, arr in tensors.items():
        np.testing.assert_array_equal(out[name], arr)
        assert out[name].dtype == arr.dtype.newbyteorder("=")


def test_array_likes_and_numpy_scalars():
    out = load_bytes(save_bytes({"list": [[1.5, 2.5]], "scalar": np.float32(3.0), "int": np.int64(-4)}))
    np.testing.assert_array_equal(out["list"], [[1.5, 2.5]])
    assert out["list"].dtype == np.float64
    assert out["scalar"].shape == () and out["scalar"].dtype == np.float32 and out["scalar"] == 3.0
    assert out["int"].dtype == np.int64 and out["int"] == -4


def test_metadata_round_trip(tmp_path):
    meta = {"format": "np", "note": "ünïcødé ✓", "json": json.dumps({"epoch": 3}), "": "empty key"}
    path = tmp_path / "m.safetensors"
    save_file({"w": np.ones(2, np.float32)}, path, metadata=meta)
    assert read_metadata(path) == meta
    save_file({"w": np.ones(2, np.float32)}, path)
    assert read_metadata(path) == {}
    save_file({"w": np.ones(2, np.float32)}, path, metadata={})
    assert read_metadata(path) == {}
    np.testing.assert_array_equal(load_file(path)["w"], np.ones(2, np.float32))


def test_empty_dict_round_trip(tmp_path):
    save_file({}, tmp_path / "e")
    assert load_file(tmp_path / "e") == {}
    save_file({}, tmp_path / "e", metadata={"k": "v"})
    assert load_file(tmp_path / "e") == {} and read_metadata(tmp_path / "e") == {"k": "v"}


def test_layout_header_padding_offsets_and_order():
    tensors = {"z": np.zeros(3, np.uint8), "b": np.ones((2, 2), np.float32), "a": np.ones(1, np.float32),
               "i": np.arange(2, dtype=np.int64), "e": np.zeros((0,), np.float64),
               "f": np.zeros(1, np.float16)}
    data = save_bytes(tensors, metadata={"k": "v"})
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    raw = data[8:8 + n]
    body = raw.rstrip(b" ")
    assert body.endswith(b"}") and len(raw) - len(body) < 8  # JSON, then at most 7 spaces of padding
    header = json.loads(raw)
    # __metadata__ first, then widest dtype first, ties by name
    assert list(header) == ["__metadata__", "i", "e", "a", "b", "f", "z"]
    pos = 0
    for name in list(header)[1:]:
        begin, end = header[name]["data_offsets"]
        assert begin == pos
        assert end - begin == tensors[name].nbytes
        pos = end
    assert len(data) == 8 + n + pos
    # the buffer holds the little-endian bytes of each tensor at its offsets
    begin, end = header["b"]["data_offsets"]
    assert data[8 + n + begin:8 + n + end] == np.ones((2, 2), "<f4").tobytes()
    # load returns the header's order
    assert list(load_bytes(data)) == ["i", "e", "a", "b", "f", "z"]


def test_writing_is_deterministic(every_dtype):
    a = every_dtype(seed=1)
    b = dict(reversed(list(a.items())))
    assert save_bytes(a, {"x": "1", "y": "2"}) == save_bytes(b, {"y": "2", "x": "1"})


def test_read_header_lists_tensors_without_data(tmp_path):
    save_file({"w": np.zeros((2, 3), np.float32), "n": np.array(5, np.int64)}, tmp_path / "h")
    assert read_header(tmp_path / "h") == {
        "n": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]},
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]},
    }


@pytest.mark.parametrize("value, match", [
    (np.zeros(2, np.complex64), "complex64"),
    (np.zeros(2, "datetime64[s]"), "datetime64"),
    (np.array(["a", "b"]), "<U1"),
    (np.array([object()]), "dtype object"),
    ([object()], "not an array of numbers"),
    ([[1.0], [1.0, 2.0]], "not a rectangular array"),
])
def test_unstorable_values_are_refused(value, match):
    with pytest.raises((SafetensorsError, TypeError), match=match):
        save_bytes({"bad": value})


def test_bad_names_and_metadata_are_refused():
    with pytest.raises(TypeError, match="names must be strings"):
        save_bytes({1: np.zeros(1)})
    with pytest.raises(SafetensorsError, match="reserved"):
        save_bytes({"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="str -> str"):
        save_bytes({"a": np.zeros(1)}, metadata={"epoch": 3})
    with pytest.raises(TypeError, match="dict of name -> array"):
        save_bytes([np.zeros(1)])
