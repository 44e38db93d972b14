import gzip
import struct
import zlib

import numpy as np
import pytest

from deepwise.data import DatasetFormatError, load_cifar10, load_mnist, read_idx
from deepwise.data.datasets import parse_idx


def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    big = arr.astype(arr.dtype.newbyteorder(">"))
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + big.tobytes()


def write(path, data: bytes, gz: bool):
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_mnist(folder, split="train", n=5, gz=False, seed=0, n_labels=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_labels or n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / f"{prefix}-images-idx3-ubyte", idx_bytes(images, 0x08), gz)
    write(folder / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels, 0x08), gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip_dtypes(tmp_path, gz):
    for code, dtype in [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                        (0x0D, np.float32), (0x0E, np.float64)]:
        arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        if dtype == np.uint8:
            arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        path = write(tmp_path / f"a{code}", idx_bytes(arr, code), gz)
        out = read_idx(path)
        assert out.dtype == np.dtype(dtype) and out.dtype.isnative
        np.testing.assert_array_equal(out, arr)


def test_idx_big_endian_is_decoded():
    raw = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">ii", 1, -2)
    np.testing.assert_array_equal(parse_idx(raw), [1, -2])


def test_idx_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 10)
    with pytest.raises(DatasetFormatError, match="bad magic number 0x12340801"):
        read_idx(p)
    p.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))  # unknown type code
    with pytest.raises(DatasetFormatError, match="bad magic number"):
        read_idx(p)


def test_idx_truncated(tmp_path):
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8), 0x08)
    p = tmp_path / "short"
    p.write_bytes(data[:-10])
    with pytest.raises(DatasetFormatError, match=r"truncated: shape \(4, 28, 28\)"):
        read_idx(p)
    p.write_bytes(data[:9])
    with pytest.raises(DatasetFormatError, match="truncated header"):
        read_idx(p)
    p.write_bytes(data + b"xx")
    with pytest.raises(DatasetFormatError, match="2 unexpected bytes"):
        read_idx(p)
    g = tmp_path / "short.gz"
    g.write_bytes(gzip.compress(data)[:-20])
    with pytest.raises(DatasetFormatError, match="truncated or corrupt gzip"):
        read_idx(g)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist(tmp_path, gz, split):
    images, labels = make_mnist(tmp_path, split, n=7, gz=gz)
    x, y = load_mnist(tmp_path, split=split)
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], images / 255.0, rtol=1e-6)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    raw, _ = load_mnist(tmp_path, split=split, dtype="uint8")
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw[:, 0], images)


def test_load_fashion_from_subfolder(tmp_path):
    images, labels = make_mnist(tmp_path / "fashion-mnist", "test", n=3, gz=True, seed=4)
    x, y = load_mnist(tmp_path, split="test", kind="fashion", dtype="uint8")
    np.testing.assert_array_equal(x[:, 0], images)
    np.testing.assert_array_equal(y, labels)


def test_load_mnist_count_mismatch_and_missing(tmp_path):
    make_mnist(tmp_path, "train", n=5, n_labels=4)
    with pytest.raises(DatasetFormatError, match="has 5 images but .* has 4 labels"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[.gz\].*download"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="kmnist")


def test_load_mnist_rejects_wrong_contents(tmp_path):
    folder = tmp_path
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28), np.float32), 0x0D))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8), 0x08))
    with pytest.raises(DatasetFormatError, match="expected uint8 images"):
        load_mnist(folder)
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8), 0x08))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([3, 12], np.uint8), 0x08))
    with pytest.raises(DatasetFormatError, match="label 12"):
        load_mnist(folder)


def make_cifar(folder, names, n=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name in names:
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        records = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        xs.append(images)
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def test_load_cifar10_train_and_test(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    images, labels = make_cifar(folder, [f"data_batch_{i}.bin" for i in range(1, 6)], n=3)
    timg, tlab = make_cifar(folder, ["test_batch.bin"], n=2, seed=1)
    x, y = load_cifar10(tmp_path)
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, images / 255.0, rtol=1e-6)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    x, y = load_cifar10(tmp_path, split="test", dtype="uint8")
    np.testing.assert_array_equal(x, timg)
    np.testing.assert_array_equal(y, tlab)
    # channel layout: the first 1024 bytes of a record are the red plane, row-major
    raw = np.fromfile(folder / "test_batch.bin", np.uint8)
    np.testing.assert_array_equal(x[0, 0, 0, :5], raw[1:6])
    np.testing.assert_array_equal(x[0, 1, 0, 0], raw[1 + 1024])


def test_cifar_truncated_and_bad_labels(tmp_path):
    folder = tmp_path
    make_cifar(folder, ["test_batch.bin"], n=2)
    data = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(data[:-100])
    with pytest.raises(DatasetFormatError, match="not a whole number of 3073-byte records"):
        load_cifar10(folder, split="test")
    bad = bytearray(data)
    bad[3073] = 200
    (folder / "test_batch.bin").write_bytes(bytes(bad))
    with pytest.raises(DatasetFormatError, match="record 1 has label 200"):
        load_cifar10(folder, split="test")


def test_cifar_python_version_read_without_running_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    # a protocol-0 pickle that would run `touch` if a plain unpickler ever loaded it
    (folder / "test_batch").write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode()
                                        + b"'\ntR.")
    with pytest.raises(DatasetFormatError, match="refusing to load os.system: a CIFAR batch holds only arrays"):
        load_cifar10(tmp_path, split="test")
    assert not (tmp_path / "pwned").exists()


def test_cifar_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"neither the binary batches \(test_batch.bin\).*nor the python "
                                                r"batches \(test_batch\).*download"):
        load_cifar10(tmp_path, split="test")


# ------------------------------------------------------------------ hostile IDX files
from fuzz.limits import run_bounded  # noqa: E402


def _gz_bomb(path, header: bytes, zero_mib: int):
    """A .gz whose stream is ``header`` then ``zero_mib`` MiB of zeros (about 1 KB per MiB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    chunk = bytes(2**20)
    parts = [comp.compress(header)] + [comp.compress(chunk) for _ in range(zero_mib)] + [comp.flush()]
    path.write_bytes(b"".join(parts))


def test_gzip_expansion_is_bounded_by_the_declared_shape(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    _gz_bomb(path, bytes([0, 0, 8, 3]) + struct.pack(">3I", 1, 28, 28), zero_mib=512)
    assert path.stat().st_size < 1_000_000  # 512 MiB once expanded
    out = run_bounded(f"""
        try:
            idx.read_idx({str(path)!r})
        except idx.DatasetFormatError as exc:
            raise RuntimeError(str(exc)) from None
    """, extra_mb=200, timeout=30)
    assert out["error"] == "RuntimeError", out
    assert "unexpected bytes after the data of shape (1, 28, 28)" in out["message"]
    assert out["rss_mb"] < 50 and out["seconds"] < 5


def test_gzip_declared_size_over_the_cap(tmp_path):
    path = tmp_path / "big.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 2]) + struct.pack(">2I", 2**31, 2**31)))
    with pytest.raises(DatasetFormatError, match=r"declares shape \(2147483648, 2147483648\), 4611686018427387916 "
                                                 r"bytes once decompressed, more than the 1073741824-byte limit"):
        read_idx(path)
    small = tmp_path / "small.gz"
    small.write_bytes(gzip.compress(idx_bytes(np.zeros((10, 10), np.uint8), 0x08)))
    assert read_idx(small).shape == (10, 10)
    with pytest.raises(DatasetFormatError, match="more than the 50-byte limit"):
        read_idx(small, max_bytes=50)


def test_dimension_product_does_not_wrap_around(tmp_path):
    """(2**16,)*4 uint8 is 2**64 bytes: in int64 that product was 0, and the header alone passed."""
    path = tmp_path / "wrap"
    path.write_bytes(bytes([0, 0, 8, 4]) + struct.pack(">4I", *[2**16] * 4))
    with pytest.raises(DatasetFormatError, match=r"shape \(65536, 65536, 65536, 65536\) is too big for any array"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", *[2**16] * 3))
    with pytest.raises(DatasetFormatError, match=r"truncated: shape \(65536, 65536, 65536\) of uint8 needs "
                                                 r"281474976710672 bytes, the data has 16"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 0, 2**31, 2**31))  # empty, yet too big
    with pytest.raises(DatasetFormatError, match="too big for any array"):
        read_idx(path)


def test_more_dimensions_than_numpy_allows(tmp_path):
    path = tmp_path / "rank"
    path.write_bytes(bytes([0, 0, 8, 65]) + struct.pack(">65I", *[1] * 65) + b"\x07")
    with pytest.raises(DatasetFormatError, match="declares 65 dimensions; NumPy arrays have at most"):
        read_idx(path)
