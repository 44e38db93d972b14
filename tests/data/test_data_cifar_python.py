"""CIFAR-10's python version: pickled batches read by the restricted reader (datasets/_pickle_safe.py).

Every file here is written by the test in the official format: ``pickle.dumps(..., protocol=2)`` of a
dict with bytes keys whose ``data`` is a uint8 ndarray (N, 3072). Malicious pickles are built from
objects whose ``__reduce__`` names a dangerous callable; they are pickled, never unpickled by a plain
unpickler.
"""

import hashlib
import io
import os
import pickle
import pickletools
import re
import struct
import tarfile
import urllib.request

import numpy as np
import pytest

from deepwise.data import DatasetFormatError, DownloadError, download, load_cifar10, read_cifar_batch
from deepwise.data.datasets import _pickle_safe, cifar
from deepwise.data.datasets.cifar import cifar10_class_names, read_cifar_meta, read_cifar_python_batch

NUMPY2 = b"numpy._core.multiarray\n_reconstruct\n"
NUMPY1 = b"numpy.core.multiarray\n_reconstruct\n"


def batch_dict(n=3, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist() if labels is None else labels
    return {b"batch_label": b"training batch 1 of 5", b"labels": labels, b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def numpy_names(blob: bytes, numpy_major: int) -> bytes:
    """The same protocol-2 pickle with the module path NumPy 1.x (numpy.core) or 2.x (numpy._core) writes."""
    src, dst = (NUMPY2, NUMPY1) if numpy_major == 1 else (NUMPY1, NUMPY2)
    blob = blob.replace(src, dst)
    assert dst in blob and src not in blob
    return blob


def write_py_batches(folder, names, n=3, seed=0, protocol=2, numpy_major=2):
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for k, name in enumerate(names):
        d = batch_dict(n, seed + k)
        blob = pickle.dumps(d, protocol=protocol)
        (folder / name).write_bytes(numpy_names(blob, numpy_major) if protocol == 2 else blob)
        xs.append(d[b"data"].reshape(n, 3, 32, 32))
        ys.append(np.array(d[b"labels"], np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def write_bin_batch(path, images, labels):
    records = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(labels), -1)], axis=1)
    path.write_bytes(records.tobytes())


@pytest.mark.parametrize("numpy_major", [1, 2])
def test_python_batch_round_trip_both_numpy_module_paths(tmp_path, numpy_major):
    d = batch_dict(n=4)
    blob = numpy_names(pickle.dumps(d, protocol=2), numpy_major)
    ops = {(op.name, arg) for op, arg, _ in pickletools.genops(blob)}
    assert ("PROTO", 2) in ops and ("GLOBAL", "numpy ndarray") in ops and ("GLOBAL", "numpy dtype") in ops
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    for reader in (read_cifar_python_batch, read_cifar_batch):
        x, y = reader(path)
        assert x.shape == (4, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x.reshape(4, -1), d[b"data"])
        assert y.tolist() == d[b"labels"]
        assert x.flags.writeable and x.flags.c_contiguous


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_python_batch_later_protocols_and_str_keys(tmp_path, protocol):
    d = {k.decode(): v for k, v in batch_dict(n=2, seed=protocol).items()}
    d["labels"] = np.array(d["labels"], dtype=np.int64)  # labels as an int array work too
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(d, protocol=protocol))
    x, y = read_cifar_python_batch(path)
    np.testing.assert_array_equal(x.reshape(2, -1), d["data"])
    np.testing.assert_array_equal(y, d["labels"])


def test_load_cifar10_python_folder_matches_binary(tmp_path):
    py_root, bin_root = tmp_path / "py", tmp_path / "bin"
    images, labels = write_py_batches(py_root / "cifar-10-batches-py", cifar._PY_FILES["train"], n=3)
    timg, tlab = write_py_batches(py_root / "cifar-10-batches-py", ["test_batch"], n=2, seed=9,
                                  numpy_major=1)
    (bin_root / "cifar-10-batches-bin").mkdir(parents=True)
    for k, name in enumerate(cifar._BIN_FILES["train"]):
        write_bin_batch(bin_root / "cifar-10-batches-bin" / name, images[3 * k:3 * k + 3], labels[3 * k:3 * k + 3])
    write_bin_batch(bin_root / "cifar-10-batches-bin" / "test_batch.bin", timg, tlab)
    for split, (ref_x, ref_y) in {"train": (images, labels), "test": (timg, tlab)}.items():
        xp, yp = load_cifar10(py_root, split=split, dtype="uint8")
        xb, yb = load_cifar10(bin_root, split=split, dtype="uint8")
        np.testing.assert_array_equal(xp, ref_x)
        np.testing.assert_array_equal(yp, ref_y)
        np.testing.assert_array_equal(xp, xb)
        np.testing.assert_array_equal(yp, yb)
    x, _ = load_cifar10(py_root, split="test")
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, timg / 255.0, rtol=1e-6)


def test_binary_preferred_when_both_versions_present(tmp_path):
    write_py_batches(tmp_path / "cifar10" / "cifar-10-batches-py", ["test_batch"], n=2, seed=1)
    images = np.full((1, 3, 32, 32), 7, np.uint8)
    write_bin_batch(tmp_path / "test_batch.bin", images, np.array([4]))
    x, y = load_cifar10(tmp_path, split="test", dtype="uint8")
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [4]


def test_class_names_from_meta_files(tmp_path):
    names = [b"plane", b"car", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    meta = {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    assert cifar10_class_names(tmp_path) == tuple(n.decode() for n in names)
    txt = tmp_path / "cifar10" / "cifar-10-batches-bin" / "batches.meta.txt"
    txt.parent.mkdir(parents=True)
    txt.write_text("\n".join(cifar.CLASSES) + "\n\n")
    assert read_cifar_meta(txt) == cifar.CLASSES
    assert cifar10_class_names(tmp_path) == cifar.CLASSES  # binary version's meta first
    assert cifar10_class_names(tmp_path / "empty") == cifar.CLASSES
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names[:3]}, protocol=2))
    with pytest.raises(DatasetFormatError, match="expected 10 CIFAR-10 class names, found 3"):
        read_cifar_meta(folder / "batches.meta")


class _RunsShell:
    """Pickles as a call to os.system; only ever pickled here, never loaded by a plain unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Calls:
    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_forbidden_global_refused_and_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    d = batch_dict(n=1)
    d[b"filenames"] = [_RunsShell(marker)]
    blob = pickle.dumps(d, protocol=protocol)
    assert b"system" in blob  # the payload really is in the file
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    module = os.system.__module__
    with pytest.raises(DatasetFormatError) as info:
        read_cifar_batch(path)
    assert str(info.value) == (f"{path}: refusing to load {module}.system: a CIFAR batch holds only arrays, "
                               "lists and bytes")
    assert not marker.exists()
    # the same through load_cifar10 and for the meta file
    (tmp_path / "test_batch").write_bytes(blob)
    with pytest.raises(DatasetFormatError, match=f"refusing to load {module}.system"):
        load_cifar10(tmp_path, split="test")
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": [_RunsShell(marker)]}, protocol))
    with pytest.raises(DatasetFormatError, match=f"refusing to load {module}.system: a CIFAR meta file"):
        cifar10_class_names(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("payload, refused", [
    (_Calls(eval, "1 + 1"), "builtins.eval"),
    (_Calls(getattr, "text", "upper"), "builtins.getattr"),
    (_Calls(np.load, "x.npy"), "numpy.load"),
    (np.int64(3), r"numpy\._?core\.multiarray\.scalar"),
])
def test_other_globals_refused(tmp_path, payload, refused):
    d = batch_dict(n=1)
    d[b"batch_label"] = payload
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(d, protocol=4))
    with pytest.raises(DatasetFormatError, match=f"refusing to load {refused}:"):
        read_cifar_python_batch(path)


@pytest.mark.parametrize("payload, message", [
    # an object array would let NumPy hold arbitrary Python objects
    (np.array([1, "a"], dtype=object), "dtype 'O8' is not allowed"),
    (np.zeros(2, dtype=[("a", "u1"), ("b", "u1")]), "dtype 'V2' is not allowed"),
    # a dtype whose state claims it holds object pointers (flags 0x3f): NumPy would dereference raw bytes
    (_Calls(np.dtype, "u8", False, True, state=(3, "<", None, None, None, -1, -1, 0x3F)),
     "state NumPy never writes"),
    (_Calls(np.dtype, "u1", False, True, state=(3, "|", None, ("a",), {"a": (np.dtype("u1"), 0)}, -1, -1, 0)),
     "state NumPy never writes"),
    # numpy.ndarray itself is never callable, _reconstruct only takes the placeholder arguments
    (_Calls(np.ndarray, (10**12,), "u1"), "calls <numpy.ndarray placeholder>, which is not callable"),
    (_Calls(np.zeros(1).__reduce__()[0], np.ndarray, (10**9,), b"b"), "unexpected array constructor"),
    (_Calls(__import__("codecs").encode, "abc", "zlib"), "allowed only for latin-1 text"),
])
def test_array_rebuilding_arguments_are_checked(tmp_path, payload, message):
    d = batch_dict(n=1)
    d[b"batch_label"] = payload
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(d, protocol=2).replace(NUMPY1, NUMPY2))
    with pytest.raises(DatasetFormatError, match=message):
        read_cifar_python_batch(path)


def test_array_data_must_match_its_shape(tmp_path):
    blob = pickle.dumps(batch_dict(n=2), protocol=4)
    shape = b"K\x02M\x00\x0c\x86"  # BININT1 2, BININT2 3072, TUPLE2: the array's shape (2, 3072)
    assert blob.count(shape) == 1
    path = tmp_path / "b"
    path.write_bytes(blob.replace(shape, b"K\x03M\x00\x0c\x86"))
    with pytest.raises(DatasetFormatError, match=r"shape \(3, 3072\) and dtype uint8 needs 9216 bytes, "
                                                 "the pickle holds 6144"):
        read_cifar_python_batch(path)


def test_truncated_and_corrupt_python_batch(tmp_path):
    blob = pickle.dumps(batch_dict(n=2), protocol=2)
    path = tmp_path / "test_batch"
    for cut in (len(blob) - 1, len(blob) // 2, 3):
        path.write_bytes(blob[:cut])
        with pytest.raises(DatasetFormatError, match=re.escape(str(path)) + ".*truncated"):
            read_cifar_batch(path)
    path.write_bytes(b"\x80\x02garbage that is not a pickle")
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: could not read a CIFAR batch from this pickle")):
        read_cifar_batch(path)


@pytest.mark.parametrize("change, message", [
    ({b"data": np.zeros((2, 3072), np.int16)}, r"'data' must be a uint8 array of shape \(N, 3072\), got int16"),
    ({b"data": np.zeros((2, 1024), np.uint8)}, r"got uint8 array of shape \(2, 1024\)"),
    ({b"data": [1, 2]}, "'data' must be a uint8 array .* got a list of 2 items"),
    ({b"labels": [1, 2, 3]}, "'data' holds 2 images but 'labels' has 3 entries"),
    ({b"labels": [1, 10]}, "image 1 has label 10, outside 0..9"),
    ({b"labels": [-1, 0]}, "image 0 has label -1, outside 0..9"),
    ({b"labels": [b"cat", b"dog"]}, "'labels' must be ints, found bytes"),
    ({b"labels": b"ab"}, "'labels' must be a list of ints, got bytes"),
    ({b"labels": None, b"data": None}, r"needs the keys 'data' and 'labels'; missing \['data', 'labels'\]"),
])
def test_wrong_content_gives_clear_errors(tmp_path, change, message):
    d = batch_dict(n=2)
    d.update(change)
    d = {k: v for k, v in d.items() if v is not None}
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(DatasetFormatError, match=message):
        read_cifar_python_batch(path)
    path.write_bytes(pickle.dumps([d], protocol=2))
    with pytest.raises(DatasetFormatError, match="must hold a dict, found list"):
        read_cifar_python_batch(path)


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_python_archive_then_load(tmp_path, monkeypatch):
    from deepwise.data.datasets import remote

    source = remote._SOURCES["cifar10-python"]
    assert source.files == {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}
    assert remote.dataset_folder("cifar-10-python", tmp_path) == tmp_path / "cifar10"
    staged = tmp_path / "staged"
    xs, ys = write_py_batches(staged, ["test_batch"], n=2, seed=3)
    names = list(cifar.CLASSES)
    (staged / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in names]}, 2))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member in source.extract:
            staged_file = staged / member.rsplit("/", 1)[1]
            blob = staged_file.read_bytes() if staged_file.is_file() else pickle.dumps(batch_dict(n=1), 2)
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    archive = buf.getvalue()
    fake = remote._Source(source.folder, ("https://mirror.example/",),
                          {"cifar-10-python.tar.gz": hashlib.md5(archive).hexdigest()}, source.extract)
    monkeypatch.setitem(remote._SOURCES, "cifar10-python", fake)
    fetched = []
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: fetched.append(url) or _Response(archive))
    root = tmp_path / "root"
    folder = download("cifar10-python", root)
    assert fetched == ["https://mirror.example/cifar-10-python.tar.gz"]
    assert (folder / "cifar-10-batches-py" / "test_batch").is_file()
    assert not (folder / "cifar-10-python.tar.gz").exists()
    x, y = load_cifar10(root, split="test", dtype="uint8")
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(y, ys)
    assert cifar10_class_names(root) == cifar.CLASSES


def test_download_python_archive_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise __import__("urllib.error").error.URLError("Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError) as info:
        download("cifar10-python", tmp_path, timeout=0.1)
    msg = str(info.value)
    assert "could not reach https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    assert f"put the files in {tmp_path / 'cifar10'} by hand" in msg
    assert "c58f30108f718f92721af3b95e74349a" in msg


def py2_style_pickle(batch: dict) -> bytes:
    """Assemble, opcode by opcode, the pickle Python 2's cPickle (protocol 2) and NumPy 1.x write for a
    CIFAR batch: str values as BINSTRING (bytes once read with encoding="bytes"), no _codecs."""
    def string(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + len(b).to_bytes(4, "little")) + b

    def integer(v: int) -> bytes:
        return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + v.to_bytes(4, "little", signed=True)

    def array(a: np.ndarray) -> bytes:
        out = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + integer(0) + b"\x85" + string(b"b")
        out += b"\x87R(" + integer(1) + b"(" + b"".join(integer(n) for n in a.shape) + b"t"
        out += b"cnumpy\ndtype\n" + string(a.dtype.str[1:].encode()) + integer(0) + integer(1) + b"\x87R"
        out += b"(" + integer(3) + string(b"|") + b"NNN" + integer(-1) + integer(-1) + integer(0) + b"tb"
        return out + b"\x89" + string(a.tobytes()) + b"tb"

    def value(v) -> bytes:
        if isinstance(v, np.ndarray):
            return array(v)
        if isinstance(v, list):
            return b"](" + b"".join(value(x) for x in v) + b"e"
        return string(v) if isinstance(v, bytes) else integer(v)

    return b"\x80\x02}(" + b"".join(string(k) + value(v) for k, v in batch.items()) + b"u."


def test_python2_written_batch(tmp_path):
    d = batch_dict(n=3, seed=5)
    blob = py2_style_pickle(d)
    ops = [op.name for op, _, _ in pickletools.genops(blob)]
    assert "SHORT_BINSTRING" in ops and "BINSTRING" in ops and "BINUNICODE" not in ops
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    x, y = read_cifar_batch(path)
    np.testing.assert_array_equal(x.reshape(3, -1), d[b"data"])
    assert y.tolist() == d[b"labels"]
    names = [c.encode() for c in cifar.CLASSES]
    (tmp_path / "batches.meta").write_bytes(py2_style_pickle({b"num_cases_per_batch": 10000,
                                                              b"label_names": names, b"num_vis": 3072}))
    assert read_cifar_meta(tmp_path / "batches.meta") == cifar.CLASSES


# ------------------------------------------------------------------ hostile files: bounded time and memory
from fuzz.limits import run_bounded  # noqa: E402


def _put(i):
    return b"r" + struct.pack("<I", i)  # LONG_BINPUT


def _get(i):
    return b"j" + struct.pack("<I", i)  # LONG_BINGET


def _tuple_dag(depth):
    """t0 = (); t(k+1) = (tk, tk): a few bytes per level, a repr (and a hash) 2**depth long."""
    ops = b"()q\x00"  # MARK, EMPTY_TUPLE, BINPUT 0
    for k in range(depth):
        ops += b"h%ch%c\x86q%c" % (k, k, k + 1)  # BINGET k, BINGET k, TUPLE2, BINPUT k+1
    return ops + b"1h%c" % depth  # POP_MARK, BINGET depth: only the last tuple stays on the stack


def _read_in_child(path, what="read_cifar_python_batch"):
    return run_bounded(f"""
        try:
            cifar.{what}({str(path)!r})
        except cifar.DatasetFormatError as exc:
            raise RuntimeError("FormatError: " + str(exc)) from None
    """, extra_mb=600, timeout=30)


def test_huge_memo_index_is_refused_before_allocating(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(b"\x80\x02N" + _put(2**28) + b".")  # 9 bytes: a memo table of 2**28 slots
    assert len(path.read_bytes()) == 9
    out = _read_in_child(path)
    assert out["error"] == "RuntimeError" and "memo index 268435456 is beyond any this 9-byte file" in out["message"]
    assert out["rss_mb"] < 50 and out["seconds"] < 5


def test_rejected_values_are_described_without_their_repr(tmp_path):
    """A 504-byte-style DAG of tuples as an argument the reader refuses: a full repr never ends."""
    ops = b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _tuple_dag(60)
    ops += b"C\x01b" + b"\x87R."  # SHORT_BINBYTES b"b", TUPLE3, REDUCE
    path = tmp_path / "b"
    path.write_bytes(ops)
    assert len(ops) < 700
    out = _read_in_child(path)
    assert not out["timed_out"] and out["seconds"] < 5
    assert "unexpected array constructor arguments (<numpy.ndarray placeholder>, a tuple of 2 items, bytes b'b')" \
        in out["message"]


def test_a_tuple_dag_as_a_dict_key_is_refused(tmp_path):
    ops = b"\x80\x02}" + _tuple_dag(60) + b"K\x01s."  # EMPTY_DICT, key: the DAG, value 1, SETITEM
    path = tmp_path / "b"
    path.write_bytes(ops)
    out = _read_in_child(path)
    assert not out["timed_out"] and out["seconds"] < 5
    assert "dict keys must be ints, bytes or text, got a tuple of 2 items" in out["message"]


def test_repeated_encoding_of_one_text_is_bounded_by_the_file_size(tmp_path):
    """One 1 MB text stored once, encoded 4000 times: 4 GB from a 1 MB file without a budget."""
    ops = b"\x80\x02c_codecs\nencode\n" + _put(0) + b"X" + struct.pack("<I", 2**20) + b"a" * 2**20 + _put(1)
    ops += b"(" + (_get(0) + _get(1) + b"X\x06\x00\x00\x00latin1\x86R") * 4000 + b"l."
    path = tmp_path / "b"
    path.write_bytes(ops)
    out = _read_in_child(path)
    assert not out["timed_out"] and out["error"] == "RuntimeError"
    assert "encoded text of 1048576 bytes would take the reader past its memory budget" in out["message"]
    assert out["rss_mb"] < 150


def test_one_file_cannot_change_how_the_next_is_read(tmp_path):
    """BUILD on the reader's own _codecs.encode tried to set its __defaults__ (and so refuse every later
    protocol-2 batch); the reader's functions take no state, and every file gets fresh ones."""
    hostile = tmp_path / "hostile"
    state = b"N}X\x0c\x00\x00\x00__defaults__X\x01\x00\x00\x00xX\x01\x00\x00\x00y\x86s\x86"  # (None, {...})
    hostile.write_bytes(b"\x80\x02c_codecs\nencode\n" + state + b"b.")
    with pytest.raises(DatasetFormatError, match=r"BUILD at byte \d+ sets state on <_codecs.encode \(checked\)>"):
        read_cifar_python_batch(hostile)
    good = tmp_path / "good"
    d = batch_dict(n=2)
    good.write_bytes(pickle.dumps(d, protocol=2))
    x, _ = read_cifar_python_batch(good)
    np.testing.assert_array_equal(x.reshape(2, -1), d[b"data"])


@pytest.mark.parametrize("ops, message", [
    (b"\x80\x02c__builtin__\nset\n)R.", "refusing to load __builtin__.set"),
    (b"\x80\x02\x8f.", "opcode EMPTY_SET at byte 2 is not allowed"),
    (b"\x80\x02G?\xf0\x00\x00\x00\x00\x00\x00.", "opcode BINFLOAT at byte 2 is not allowed"),
    (b"\x80\x02(N(o.", "opcode OBJ at byte 5 is not allowed"),
    (b"\x80\x02j\x05\x00\x00\x00.", "memo index 5 was never stored"),
    (b"\x80\x02a.", "APPEND at byte 2 finds the stack empty"),
    (b"\x80\x02N\x8a\x10" + b"\xff" * 15 + b"\x7f\x86.", "an int of 127 bits at byte 3"),  # LONG1
    (b"\x80\x02(K\x01K\x02K\x03d.", "DICT at byte 9 has an odd number of items"),
])
def test_structural_refusals_name_the_opcode(tmp_path, ops, message):
    path = tmp_path / "b"
    path.write_bytes(ops)
    with pytest.raises(DatasetFormatError, match=re.escape(message)):
        read_cifar_python_batch(path)


def test_files_over_the_size_cap_are_not_read(tmp_path, monkeypatch):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(batch_dict(n=1), protocol=2))
    monkeypatch.setattr(_pickle_safe, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DatasetFormatError, match=rf"{len(path.read_bytes())} bytes, more than the 1000-byte limit"):
        read_cifar_python_batch(path)
