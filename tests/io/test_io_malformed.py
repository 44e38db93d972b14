"""Corrupt, hostile and foreign files: each gives a SafetensorsError that says what is wrong, and
nothing in them is ever executed."""

import json
import pickle
import struct
import zipfile

import numpy as np
import pytest

import deepwise.io as dio
from deepwise import backend
from deepwise.io import SafetensorsError
from deepwise.io.safetensors import load_bytes, load_file, save_bytes


def build(header, buffer=b"", length=None):
    """A file from a header (dict -> compact JSON, or raw bytes) and a data buffer."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw) if length is None else length) + raw + buffer


def f32(shape, begin, end):
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


def write(tmp_path, data, name="bad.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect_error(tmp_path, data, *phrases):
    """The file fails to load through every entry point, naming the file and each phrase."""
    path = write(tmp_path, data)
    for reader in (load_file, dio.load, dio.read_metadata, dio.read_header):
        with pytest.raises(SafetensorsError) as info:
            reader(path)
        msg = str(info.value)
        assert str(path) in msg, msg
        for phrase in phrases:
            assert phrase in msg, f"{phrase!r} not in {msg!r}"
    with pytest.raises(SafetensorsError) as info:
        load_bytes(data)
    for phrase in phrases:
        assert phrase in str(info.value)
    return str(info.value)


GOOD = build({"w": f32([2], 0, 8)}, np.array([1.0, 2.0], "<f4").tobytes())


def test_good_file_loads(tmp_path):
    # the fixture the malformed cases are made from is itself valid
    np.testing.assert_array_equal(load_file(write(tmp_path, GOOD))["w"], [1.0, 2.0])


def test_empty_file(tmp_path):
    expect_error(tmp_path, b"", "empty")


def test_shorter_than_length_field(tmp_path):
    expect_error(tmp_path, b"\x10\x00\x00", "only 3 bytes long")


@pytest.mark.parametrize("cut", [4, 8, 20, len(GOOD) - 3])
def test_truncated_files(tmp_path, cut):
    msg = expect_error(tmp_path, GOOD[:cut], "truncated")
    if cut == len(GOOD) - 3:
        assert "'w'" in msg and "run past the end" in msg


def test_huge_header_length_is_checked_before_allocating(tmp_path):
    data = struct.pack("<Q", 2**60) + b"{}" + b" " * 6
    msg = expect_error(tmp_path, data, str(2**60), "only 8 bytes follow")
    assert "MemoryError" not in msg


def test_header_length_over_limit_in_a_big_file(tmp_path):
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as f:  # a sparse 120 MB file: big enough that the length fits, too big to trust
        f.write(struct.pack("<Q", 110_000_000))
        f.truncate(120_000_000)
    with pytest.raises(SafetensorsError, match="100000000-byte limit"):
        load_file(path)


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(0)
    for size in (7, 64, 4096):
        expect_error(tmp_path, rng.integers(0, 256, size, dtype=np.uint8).tobytes(), "not safetensors")


def test_random_bytes_with_a_plausible_length(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, 96, dtype=np.uint8).tobytes()
    with pytest.raises(SafetensorsError, match="UTF-8|'{'|JSON"):
        load_file(write(tmp_path, struct.pack("<Q", 64) + noise))


def test_bad_json(tmp_path):
    expect_error(tmp_path, build(b'{"w": {"dtype": "F32", "shape": [2], '), "not valid JSON")


def test_header_not_utf8(tmp_path):
    expect_error(tmp_path, build(b'{"\xff\xfe": 1}'), "not valid UTF-8")


def test_header_not_an_object(tmp_path):
    expect_error(tmp_path, build(b"[1, 2, 3]"), "not a JSON object")


def test_offsets_past_the_end(tmp_path):
    data = build({"w": f32([4], 0, 16)}, bytes(8))
    expect_error(tmp_path, data, "'w'", "[0, 16]", "run past the end", "8 bytes")


def test_shape_and_size_disagree(tmp_path):
    data = build({"w": f32([3], 0, 8)}, bytes(8))
    expect_error(tmp_path, data, "'w'", "shape (3,)", "needs 12 bytes", "hold 8")


def test_overlapping_offsets(tmp_path):
    data = build({"a": f32([2], 0, 8), "b": f32([2], 4, 12)}, bytes(12))
    expect_error(tmp_path, data, "'b'", "overlap", "'a'")


def test_gap_between_tensors(tmp_path):
    data = build({"a": f32([1], 0, 4), "b": f32([1], 8, 12)}, bytes(12))
    expect_error(tmp_path, data, "'b'", "unused")


def test_trailing_bytes_not_covered(tmp_path):
    expect_error(tmp_path, GOOD + bytes(4), "cover only the first 8")


def test_unknown_dtype(tmp_path):
    data = build({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16))
    expect_error(tmp_path, data, "'w'", "unknown dtype 'F128'")


@pytest.mark.parametrize("shape", [[-1], [1.0], [True], "2", None])
def test_bad_shapes(tmp_path, shape):
    data = build({"w": {"dtype": "U8", "shape": shape, "data_offsets": [0, 1]}}, bytes(1))
    expect_error(tmp_path, data, "'w'", "shape must be a list of non-negative integers")


@pytest.mark.parametrize("offsets", [[0], [0, 1, 2], [-1, 0], [0.0, 1.0], [1, 0]])
def test_bad_offsets(tmp_path, offsets):
    data = build({"w": {"dtype": "U8", "shape": [1], "data_offsets": offsets}}, bytes(1))
    expect_error(tmp_path, data, "'w'", "data_offsets")


def test_missing_field_and_non_object_entry(tmp_path):
    no_offsets = build({"w": {"dtype": "F32", "shape": [1]}}, bytes(4))
    expect_error(tmp_path, no_offsets, "'w'", "lacks data_offsets")
    expect_error(tmp_path, build({"w": [1, 2]}), "'w'", "expected an object")


def test_duplicate_names(tmp_path):
    entry = b'{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    raw = b'{"w":' + entry + b',"w":' + entry + b"}"
    expect_error(tmp_path, build(raw, bytes(1)), "'w' twice")


def test_bad_metadata(tmp_path):
    expect_error(tmp_path, build({"__metadata__": {"epoch": 3}}), "__metadata__")
    expect_error(tmp_path, build({"__metadata__": ["x"]}), "__metadata__")


def test_bool_bytes_other_than_0_and_1(tmp_path):
    path = write(tmp_path, build({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x07"))
    with pytest.raises(SafetensorsError, match="'m' is BOOL but holds bytes other than 0 and 1"):
        load_file(path)


def test_bf16_without_ml_dtypes_is_refused_clearly_but_its_header_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "_bfloat16", [None])  # as if ml_dtypes were not installed
    data = build({"__metadata__": {"k": "v"}, "w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
                 bytes(4))
    path = write(tmp_path, data)
    assert dio.read_metadata(path) == {"k": "v"}
    assert dio.read_header(path)["w"]["dtype"] == "BF16"
    with pytest.raises(SafetensorsError, match="'w' is BF16, which NumPy has no dtype for without"):
        load_file(path)
    with pytest.raises(SafetensorsError, match="'w' is BF16"):
        load_bytes(data)


def test_bf16_with_a_wrong_size_is_refused_before_any_read(tmp_path):
    pytest.importorskip("ml_dtypes")
    data = build({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 4]}}, bytes(4))
    with pytest.raises(SafetensorsError, match="shape \\(3,\\) of BF16 needs 6 bytes"):
        load_file(write(tmp_path, data))
    ok = build({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\x80\x3f\x00\xc0")
    assert load_bytes(ok)["w"].tolist() == [1.0, -2.0]


class _Trap:
    """Unpickling this object creates a file: the proof that a loader executed pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_trap_is_live(tmp_path):
    # control: the payload really does create its marker when unpickled, so the tests below mean something
    marker = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(_Trap(str(marker)))).close()
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_file_is_refused_and_never_unpickled(tmp_path, protocol):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"weight": _Trap(str(marker))}, protocol=protocol)
    msg = expect_error(tmp_path, payload, "pickle", "never unpickles")
    assert not marker.exists(), msg


def test_pickle_payload_in_the_header_is_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Trap(str(marker)), protocol=4)
    expect_error(tmp_path, struct.pack("<Q", len(payload)) + payload, "not valid UTF-8")
    assert not marker.exists()


def test_torch_style_zip_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:  # the layout torch.save writes: archive/data.pkl + data
        z.writestr("archive/data.pkl", pickle.dumps(_Trap(str(marker)), protocol=2))
        z.writestr("archive/version", "3\n")
    with pytest.raises(ValueError, match="refusing the global io.open.*nothing is ever called") as info:
        dio.load(path)  # read by the no-pickle PyTorch reader, which refuses the global
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_real_torch_save_file_is_read_without_pickle(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(3)}, path)
    np.testing.assert_array_equal(dio.load(path)["w"].array, np.ones(3, np.float32))
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    np.testing.assert_array_equal(dio.load(legacy)["w"].array, np.ones(3, np.float32))
    with pytest.raises(SafetensorsError, match="zip archive.*torch.save"):
        load_file(path)  # the safetensors reader itself still names what the file is


def test_numpy_npy_file_is_refused(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(3))
    with pytest.raises(SafetensorsError, match="NumPy .npy"):
        load_file(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nope.safetensors")


def test_errors_are_value_errors():
    assert issubclass(SafetensorsError, ValueError)
    with pytest.raises(ValueError):
        load_bytes(save_bytes({"w": np.zeros(2, np.float32)})[:-1])


def test_header_length_changes_are_caught(tmp_path):
    # raising any byte of the length field makes the header swallow data bytes or run past the end
    good = save_bytes({"w": np.arange(3, dtype=np.float32)})
    for i in range(8):
        for delta in (1, 2, 0x40, 0x80):
            data = bytearray(good)
            data[i] = (data[i] + delta) % 256
            with pytest.raises(SafetensorsError):
                load_bytes(bytes(data))


@pytest.mark.parametrize("dtype", [["F32"], {"a": 1}, 5, None])
def test_dtype_that_is_not_a_string(tmp_path, dtype):
    data = build({"w": {"dtype": dtype, "shape": [1], "data_offsets": [0, 4]}}, bytes(4))
    expect_error(tmp_path, data, "'w'", "dtype must be a string, got")


@pytest.mark.parametrize("shape, phrase", [
    ([1] * 65, "shape has 65 dimensions; NumPy arrays have at most 64"),
    ([0, 2**63], "shape must be a list of non-negative integers below 2**63, got a JSON array of 2 items "
                 "(9223372036854775808 is not)"),
    ([0, 2**62, 4], "shape (0, 4611686018427387904, 4) is too big for any array"),
    ([0] + [2**40] * 60, "is too big for any array"),
])
def test_shapes_numpy_cannot_allocate(tmp_path, shape, phrase):
    """Zero-size shapes pass the byte count (0 == 0) but NumPy still refuses them: caught in the header,
    for read_metadata and read_header too."""
    data = build({"w": {"dtype": "U8", "shape": shape, "data_offsets": [0, 0]}})
    expect_error(tmp_path, data, "'w'", phrase)


def test_messages_stay_short_for_huge_names_and_values(tmp_path):
    name = "n" * 1_000_000
    data = build({name: {"dtype": "F32", "shape": [[1] * 100_000], "data_offsets": [0, 4]}}, bytes(4))
    msg = expect_error(tmp_path, data, "shape must be a list")
    assert len(msg) < 600, len(msg)
