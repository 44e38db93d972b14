"""Mutation fuzzing of every file reader, seeded from files the project writes.

Each ``Target`` names a reader, the seed files it starts from and the one exception type a bad file
may raise (the reader's own format error). ``fuzz(target, n, seed)`` mutates the seeds ``n`` times
with a fixed random seed (flips, interesting bytes and integers, inserted format tokens, cuts,
repeats, splices), feeds every input to the reader and collects ``Finding``s: any other exception, or
an input that took longer than ``max_seconds``. Inputs are deterministic per (target, seed, index), so
a finding is replayed with ``mutate``.

By hand, for as long as you like (a finding is printed and saved under ``--save``):

    python tests/fuzz/harness.py safetensors --seconds 600 --seed 7
    python tests/fuzz/harness.py all --n 100000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import random
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from io import BytesIO

import numpy as np

from deepwise.data.datasets import cifar, idx
from deepwise.data.datasets.errors import DatasetFormatError
from deepwise.io import CheckpointError, SafetensorsError, checkpoint, safetensors, weights
from deepwise.io.torch_format import TorchFormatError
from deepwise.train.checkpoint import load_training_checkpoint, save_training_checkpoint
from deepwise.train.run_folder import load_config

_INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x22, 0x5B, 0x7B, 0x2E]
_INTERESTING_INTS = [0, 1, 2**7, 2**8 - 1, 2**15, 2**16 - 1, 2**28, 2**31 - 1, 2**31, 2**32 - 1, 2**62, 2**63 - 1,
                     2**64 - 1]


@dataclass
class Finding:
    target: str
    index: int
    error: str
    seconds: float
    data: bytes = field(repr=False)


@dataclass
class Target:
    name: str
    seeds: list[bytes]
    read: object  # callable(bytes) -> None
    allowed: tuple[type[BaseException], ...]
    tokens: list[bytes]


# ------------------------------------------------------------------ seeds: files the project writes
def _safetensors_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    return [
        safetensors.save_bytes({"w": rng.standard_normal((2, 3)).astype(np.float32),
                                "b": np.arange(3, dtype=np.int64), "m": np.array([True, False])},
                               metadata={"note": "seed"}),
        safetensors.save_bytes({"e": np.zeros((0, 4), np.float16), "s": np.array(5, np.uint8)}),
    ]


def _checkpoint_seed() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "last.ckpt")
        save_training_checkpoint(
            path, model_state={"weight": np.ones((2, 2), np.float32)},
            objects={"optimizer": {"state": {0: {"step": 1, "exp_avg": np.zeros(2, np.float32)}},
                                   "param_groups": [{"lr": 0.1, "params": [0]}]}},
            callbacks={}, history={"epoch": [0], "history": {"loss": [1.0]}},
            position={"epoch": 1, "batch": 0, "global_step": 4, "epoch_rng_state": None, "progress": None},
            rng_state=np.random.default_rng(0).bit_generator.state, settings={"batch_size": 8})
        with open(path, "rb") as fh:
            return fh.read()


def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _idx_seeds() -> list[bytes]:
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    return [_idx_bytes(images, 0x08), _idx_bytes(np.array([1.5, -2.0], np.float32), 0x0D)]


def _pickle_seeds() -> list[bytes]:
    small = {b"labels": [1, 2], b"data": np.arange(16, dtype=np.uint8).reshape(2, 8), b"batch_label": b"b"}
    return [pickle.dumps(small, protocol=2), pickle.dumps(small, protocol=4), pickle.dumps(small, protocol=5),
            pickle.dumps({b"label_names": [b"cat", b"dog"]}, protocol=2)]


def _torch_seeds() -> list[bytes]:
    """torch.save files (zip and legacy), when PyTorch is installed (the test oracle); else none."""
    try:
        import torch
    except ImportError:
        return []
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(3), "meta": [1, "a"]}
    out = []
    for zipped in (True, False):
        buf = BytesIO()
        torch.save(state, buf, _use_new_zipfile_serialization=zipped)
        out.append(buf.getvalue())
    return out


# ------------------------------------------------------------------ readers, on bytes
def _with_file(data: bytes, suffix: str, fn):
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        fn(path)
    finally:
        os.unlink(path)


def _read_safetensors(data: bytes) -> None:
    safetensors.load_bytes(data)
    _with_file(data, ".safetensors", lambda p: (safetensors.load_file(p), safetensors.read_metadata(p)))


def _read_torch(data: bytes) -> None:
    _with_file(data, ".pt", weights.load)
    weights.load(BytesIO(data))


def _read_checkpoint(data: bytes) -> None:
    _with_file(data, ".ckpt", load_training_checkpoint)


def _read_checkpoint_json(data: bytes) -> None:
    checkpoint.loads_json(data.decode("utf-8", "replace"), "<fuzz>", "metadata")


def _read_idx(data: bytes) -> None:
    idx.parse_idx(data)


def _read_idx_gz(data: bytes) -> None:
    _with_file(gzip.compress(data, 1), ".gz", lambda p: idx.read_idx(p, max_bytes=1 << 20))
    _with_file(data, ".gz", lambda p: idx.read_idx(p, max_bytes=1 << 20))  # the raw bytes as a .gz


def _read_pickle(data: bytes) -> None:
    _with_file(data, "", lambda p: (cifar.load_restricted(p), _cifar_batch(p)))


def _cifar_batch(path) -> None:
    try:
        cifar.read_cifar_batch(path)
    except DatasetFormatError:
        pass


def _read_config(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "config.json"), "wb") as fh:
            fh.write(data)
        load_config(folder)


def targets() -> dict[str, Target]:
    st_tokens = [b'"dtype":', b'"shape":', b'"data_offsets":', b"[", b"]", b"{", b"}", b"-1", b"1e400",
                 b"18446744073709551616", b'["F32"]', b"[" * 64, b'"__metadata__":', b"null", b"\\u0000"]
    pickle_tokens = [b"r\x00\x00\x00\x10", b"j\xff\xff\xff\x00", b"(", b"t", b"\x86", b"R", b"b", b"s", b"u",
                     b"h\x00", b"q\x01", b"\x8a\x08" + b"\xff" * 8, b"c_codecs\nencode\n", b"cnumpy\ndtype\n",
                     b"\x8f", b"\x94", b"\x95" + struct.pack("<Q", 2**40), b"B" + struct.pack("<I", 2**31)]
    config_tokens = [b"[" * 200, b'{"recipe": ', b"null", b"1e999", b'"\\ud800"', b"]" * 50]
    return {
        "safetensors": Target("safetensors", _safetensors_seeds(), _read_safetensors, (SafetensorsError,),
                              st_tokens),
        "checkpoint": Target("checkpoint", [_checkpoint_seed()], _read_checkpoint, (SafetensorsError,),
                             st_tokens),
        "checkpoint-json": Target("checkpoint-json", [json.dumps({"a": [1, {"b": "[x"}]}).encode()],
                                  _read_checkpoint_json, (CheckpointError,), config_tokens),
        "idx": Target("idx", _idx_seeds(), _read_idx, (DatasetFormatError,),
                      [b"\x00\x00\x08\x41", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"]),
        "idx-gz": Target("idx-gz", _idx_seeds(), _read_idx_gz, (DatasetFormatError,),
                         [b"\xff\xff\xff\xff", b"\x1f\x8b"]),
        "cifar-pickle": Target("cifar-pickle", _pickle_seeds(), _read_pickle, (DatasetFormatError,), pickle_tokens),
        "torch": Target("torch", _torch_seeds(), _read_torch, (TorchFormatError, SafetensorsError),
                        pickle_tokens + [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"]),
        "config": Target("config", [json.dumps({"recipe": "digits-mlp", "epochs": 2, "lr": 0.1}).encode()],
                         _read_config, (CheckpointError, FileNotFoundError), config_tokens),
    }


# ------------------------------------------------------------------ mutation
def mutate(data: bytes, rng: random.Random, tokens: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1) if buf else 0
        if kind == 0 and buf:  # flip a bit
            p = min(pos, len(buf) - 1)
            buf[p] ^= 1 << rng.randrange(8)
        elif kind == 1 and buf:  # an interesting byte
            buf[min(pos, len(buf) - 1)] = rng.choice(_INTERESTING_BYTES)
        elif kind == 2:  # an interesting integer, 1/2/4/8 bytes, either byte order
            width = rng.choice((1, 2, 4, 8))
            value = rng.choice(_INTERESTING_INTS) % (1 << (8 * width))
            raw = value.to_bytes(width, rng.choice(("little", "big")))
            buf[pos:pos + width] = raw
        elif kind == 3:  # a token of the format
            buf[pos:pos] = rng.choice(tokens)
        elif kind == 4 and buf:  # cut
            buf = buf[:pos] if rng.random() < 0.5 else buf[:pos] + buf[pos + rng.randint(1, 64):]
        elif kind == 5 and buf:  # repeat a slice
            end = min(len(buf), pos + rng.randint(1, 32))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 16)
        elif kind == 6:  # random bytes
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 7 and len(buf) >= 8:  # nudge a leading u64 (the header length of safetensors)
            buf[:8] = struct.pack("<Q", (struct.unpack("<Q", bytes(buf[:8]))[0] + rng.randint(-16, 16)) % 2**64)
    return bytes(buf)


def _inputs(target: Target, n: int, seed: int):
    rng = random.Random(f"{target.name}:{seed}")
    for i in range(n):
        yield i, mutate(rng.choice(target.seeds), rng, target.tokens)


def run_one(target: Target, data: bytes) -> str | None:
    """None if the reader accepted ``data`` or raised its own error; else what it raised."""
    try:
        target.read(data)
    except target.allowed:
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return None


def fuzz(target: Target, n: int, seed: int = 0, max_seconds: float = 2.0, deadline: float | None = None):
    """(findings, inputs run, slowest input in seconds)."""
    findings, slowest, count = [], 0.0, 0
    for i, data in _inputs(target, n, seed):
        start = time.perf_counter()
        error = run_one(target, data)
        took = time.perf_counter() - start
        slowest, count = max(slowest, took), count + 1
        if error is None and took > max_seconds:
            error = f"took {took:.2f} s"
        if error is not None:
            findings.append(Finding(target.name, i, error, took, data))
        if deadline is not None and time.time() > deadline:
            break
    return findings, count, slowest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["all", *targets()])
    parser.add_argument("--n", type=int, default=10**9, help="inputs per target (default: until --seconds)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default="fuzz-findings", help="folder for the inputs of findings")
    args = parser.parse_args(argv)
    chosen = targets() if args.target == "all" else {args.target: targets()[args.target]}
    failed = 0
    for name, target in chosen.items():
        findings, count, slowest = fuzz(target, args.n, args.seed, deadline=time.time() + args.seconds)
        print(f"{name}: {count} inputs, slowest {slowest * 1000:.1f} ms, {len(findings)} findings", flush=True)
        for f in findings[:20]:
            os.makedirs(args.save, exist_ok=True)
            out = os.path.join(args.save, f"{name}-{args.seed}-{f.index}.bin")
            with open(out, "wb") as fh:
                fh.write(f.data)
            print(f"  #{f.index}: {f.error} ({len(f.data)} bytes, saved to {out})")
        failed += bool(findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
