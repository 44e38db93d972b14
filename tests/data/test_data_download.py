import hashlib
import io
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from deepwise.data import ChecksumError, DownloadError, download, download_url, load_cifar10, verify_checksum
from deepwise.data.datasets import dataset_folder, default_root


def test_verify_checksum_md5_and_sha256(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"deepwise data")
    verify_checksum(p, hashlib.md5(b"deepwise data").hexdigest())
    verify_checksum(p, hashlib.sha256(b"deepwise data").hexdigest().upper())
    with pytest.raises(ChecksumError, match="md5 is .* published value is 0{32}"):
        verify_checksum(p, "0" * 32)
    with pytest.raises(ChecksumError, match="sha256"):
        verify_checksum(p, "f" * 64)
    with pytest.raises(ValueError, match="hex digits"):
        verify_checksum(p, "abc")


def test_offline_error_for_unreachable_url(tmp_path):
    dest = tmp_path / "x.gz"
    with pytest.raises(DownloadError, match=r"could not reach http://127\.0\.0\.1:9/x\.gz"):
        download_url("http://127.0.0.1:9/x.gz", dest, timeout=0.5)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def _offline(*args, **kwargs):
    raise urllib.error.URLError("Temporary failure in name resolution")


def test_download_offline_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(DownloadError) as info:
        download("mnist", tmp_path, timeout=0.1)
    msg = str(info.value)
    assert "could not reach https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in msg
    assert "Temporary failure in name resolution" in msg
    assert f"put the files in {tmp_path / 'mnist'} by hand" in msg
    assert "t10k-labels-idx1-ubyte.gz" in msg


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_url_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(b"not the real file"))
    dest = tmp_path / "sub" / "file.gz"
    with pytest.raises(ChecksumError, match="published value is " + "a" * 32):
        download_url("https://example.org/file.gz", dest, "a" * 32)
    assert list((tmp_path / "sub").iterdir()) == []
    good = hashlib.sha256(b"not the real file").hexdigest()
    assert download_url("https://example.org/file.gz", dest, good).read_bytes() == b"not the real file"


def test_download_keeps_valid_files_and_replaces_corrupt_ones(tmp_path, monkeypatch):
    from deepwise.data.datasets import remote as dl_module

    files = {"a.bin": b"alpha", "b.bin": b"beta"}
    source = dl_module._Source("toy", ("https://mirror.example/",),
                               {n: hashlib.md5(d).hexdigest() for n, d in files.items()})
    monkeypatch.setitem(dl_module._SOURCES, "toy", source)
    fetched = []

    def fake_urlopen(url, timeout):
        fetched.append(url)
        return _Response(files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"alpha")       # valid: kept
    (folder / "b.bin").write_bytes(b"corrupted")   # wrong checksum: fetched again
    assert download("toy", tmp_path) == folder
    assert fetched == ["https://mirror.example/b.bin"]
    assert (folder / "b.bin").read_bytes() == b"beta"


def test_cifar_archive_extracted_safely(tmp_path, monkeypatch):
    from deepwise.data.datasets import remote as dl_module

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in dl_module._SOURCES["cifar10"].extract:
            rec = np.concatenate([[3], rng.integers(0, 256, 3072)]).astype(np.uint8).tobytes()
            info = tarfile.TarInfo(name)
            info.size = len(rec)
            tar.addfile(info, io.BytesIO(rec))
        evil = tarfile.TarInfo("../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    archive = buf.getvalue()
    source = dl_module._Source("cifar10", ("https://mirror.example/",),
                               {"cifar-10-binary.tar.gz": hashlib.md5(archive).hexdigest()},
                               extract=dl_module._SOURCES["cifar10"].extract)
    monkeypatch.setitem(dl_module._SOURCES, "cifar10", source)
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(archive))
    folder = download("cifar10", tmp_path)
    assert not (tmp_path / "evil.txt").exists() and not (folder.parent / "evil.txt").exists()
    x, y = load_cifar10(tmp_path, split="test", dtype="uint8")
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [3]


def test_unknown_dataset_and_default_root(tmp_path, monkeypatch):
    with pytest.raises(ValueError,
                       match="unknown dataset 'imagenet'; known: cifar10, cifar10-python, fashion-mnist, mnist"):
        download("imagenet", tmp_path)
    monkeypatch.setenv("DEEPWISE_DATA", str(tmp_path))
    assert default_root() == tmp_path
    assert dataset_folder("fashion") == tmp_path / "fashion-mnist"
    monkeypatch.delenv("DEEPWISE_DATA")
    assert default_root().parts[-2:] == (".cache", "deepwise")
