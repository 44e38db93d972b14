"""Fetching the official dataset files, with their published checksums verified.

    deepwise.data.download("mnist")              # -> ~/.cache/deepwise/mnist (or $DEEPWISE_DATA/mnist)
    deepwise.data.download("cifar10", "data/")   # -> data/cifar10/cifar-10-batches-bin

Files are streamed to a temporary name in the target folder, hashed on the way, and renamed into
place only when the hash matches, so an interrupted or tampered download never looks complete.
Offline, the error says which URL failed and which files to put where by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deepwise.data.datasets.errors import ChecksumError, DownloadError


@dataclass(frozen=True)
class _Source:
    folder: str            # subfolder of the data root
    mirrors: tuple          # base URLs, tried in order
    files: dict             # file name -> published checksum (md5: 32 hex digits, sha256: 64)
    extract: tuple = ()     # for an archive: the member paths to extract (regular files only)


_SOURCES = {
    "mnist": _Source(
        "mnist",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": _Source(
        "fashion-mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "cifar10": _Source(
        "cifar10",
        ("https://www.cs.toronto.edu/~kriz/",),
        {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        extract=tuple(f"cifar-10-batches-bin/{n}" for n in
                      [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]),
    ),
    # the python version: pickled batches, read by cifar.py with a restricted unpickler (_pickle_safe.py)
    "cifar10-python": _Source(
        "cifar10",
        ("https://www.cs.toronto.edu/~kriz/",),
        {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        extract=tuple(f"cifar-10-batches-py/{n}" for n in
                      [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
    ),
}
_ALIASES = {"fashion": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10",
            "cifar-10-python": "cifar10-python", "cifar10_python": "cifar10-python"}


def dataset_names() -> list[str]:
    """Names ``download`` accepts."""
    return sorted(_SOURCES)


def _source(name: str) -> _Source:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _SOURCES:
        raise ValueError(f"download: unknown dataset {name!r}; known: {', '.join(dataset_names())}")
    return _SOURCES[key]


def default_root() -> Path:
    """Where datasets live by default: ``$DEEPWISE_DATA`` if set, else ``~/.cache/deepwise``."""
    env = os.environ.get("DEEPWISE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepwise"


def dataset_folder(name: str, root=None) -> Path:
    """The folder ``download(name, root)`` fills."""
    return Path(root if root is not None else default_root()).expanduser() / _source(name).folder


def _algorithm(expected: str) -> str:
    lengths = {32: "md5", 40: "sha1", 64: "sha256"}
    try:
        return lengths[len(expected)]
    except KeyError:
        raise ValueError(f"checksum {expected!r}: expected 32 (md5), 40 (sha1) or 64 (sha256) "
                         "hex digits") from None


def file_checksum(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path, expected: str, algorithm: str | None = None) -> None:
    """Raise ``ChecksumError`` unless the file's digest equals ``expected`` (md5 or sha256, chosen
    by the digest's length unless ``algorithm`` says)."""
    algorithm = algorithm or _algorithm(expected)
    actual = file_checksum(path, algorithm)
    if actual.lower() != expected.lower():
        raise ChecksumError(f"{path}: {algorithm} is {actual}, but the published value is {expected}; "
                            "the file is corrupt, incomplete or not the official one (delete it and "
                            "download again)")


def download_url(url: str, dest, checksum: str | None = None, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically, verifying ``checksum`` when given. Raises
    ``DownloadError`` when the server cannot be reached and ``ChecksumError`` on a mismatch (nothing
    is left at ``dest`` in either case)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    algorithm = _algorithm(checksum) if checksum else "sha256"
    digest = hashlib.new(algorithm)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DownloadError(f"could not reach {url} ({reason})") from exc
            out.flush()
            os.fsync(out.fileno())
        if checksum and digest.hexdigest().lower() != checksum.lower():
            raise ChecksumError(f"{url}: downloaded data has {algorithm} {digest.hexdigest()}, but the "
                                f"published value is {checksum}; the download was corrupted or the file "
                                "changed upstream")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _by_hand(source: _Source, folder: Path) -> str:
    listing = "; ".join(f"{n} (from {source.mirrors[0]}{n}, checksum {c})" for n, c in source.files.items())
    return f"put the files in {folder} by hand: {listing}"


def _extract(archive: Path, members: tuple, folder: Path) -> None:
    """Copy only the named regular-file members out of a tar archive (no links, no other paths)."""
    with tarfile.open(archive, "r:*") as tar:
        for name in members:
            try:
                info = tar.getmember(name)
            except KeyError:
                raise DownloadError(f"{archive}: member {name} is missing from the archive") from None
            if not info.isfile():
                raise DownloadError(f"{archive}: member {name} is not a regular file")
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(info)
            tmp = target.with_name(target.name + ".part")
            with src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, target)


def download(name: str, root=None, timeout: float = 30.0) -> Path:
    """Download dataset ``name`` ("mnist", "fashion-mnist", "cifar10") into ``root/<name>`` (default
    root: ``default_root()``), verifying the published checksums; files already present and valid
    are kept. Returns the folder. Offline, raises ``DownloadError`` telling where to put the files."""
    source = _source(name)
    folder = dataset_folder(name, root)
    if source.extract and all((folder / m).is_file() for m in source.extract):
        return folder
    for fname, checksum in source.files.items():
        path = folder / fname
        if path.is_file():
            try:
                verify_checksum(path, checksum)
                continue
            except ChecksumError:
                path.unlink()  # a stale or partial copy: fetch it again
        failures = []
        for base in source.mirrors:
            try:
                download_url(base + fname, path, checksum, timeout)
                break
            except DownloadError as exc:
                failures.append(str(exc))
        else:
            raise DownloadError("; ".join(failures) + "; " + _by_hand(source, folder))
    if source.extract:
        for fname in source.files:
            _extract(folder / fname, source.extract, folder)
            (folder / fname).unlink()
    return folder
