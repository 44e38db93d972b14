"""dw.load reads the files torch.save writes (zip and legacy) without ever running pickle; dw.save and
dw.load take file objects and nested objects of tensors and numbers."""

import io
import math
import pickle
import random
import struct
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

import deepwise as dw
from deepwise import backend
from deepwise.io.safetensors import SafetensorsError, load_file_with_metadata
from deepwise.io.torch_format import TorchFormatError
from deepwise.io.weights import STRUCTURE_KEY

torch = pytest.importorskip("torch")

FORMATS = {"zip": {}, "legacy": {"_use_new_zipfile_serialization": False}}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.int8, torch.int16, torch.int32, torch.int64,
          torch.uint8, torch.bool, torch.complex64, torch.complex128, torch.uint16, torch.uint32, torch.uint64,
          torch.bfloat16]


def save_torch(obj, path, fmt, **kw):
    torch.save(obj, path, **FORMATS[fmt], **kw)
    return path


def same(ours, theirs):
    """Deep equality of what dw.load gave and what torch.load gives, tensors compared bit for bit."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, dw.Tensor), type(ours)
        want = theirs.detach().float().numpy() if theirs.dtype == torch.bfloat16 else theirs.detach().numpy()
        if theirs.dtype == torch.bfloat16 and backend.bfloat16_dtype() is not None:
            want = want.astype(backend.bfloat16_dtype())  # exact: every bfloat16 is a float32
        assert ours.array.dtype == want.dtype, (ours.array.dtype, want.dtype)
        assert ours.shape == tuple(want.shape)
        np.testing.assert_array_equal(ours.array, want)
        assert ours.array.flags.c_contiguous and ours.array.flags.writeable
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs)
        for k in theirs:
            same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same(a, b)
    elif isinstance(theirs, float) and math.isnan(theirs):
        assert math.isnan(ours)
    else:
        assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_dtype_loads_identically(tmp_path, fmt):
    g = torch.Generator().manual_seed(0)
    # torch.save writes uint16/32/64 (untyped storages) only in the zip layout
    dtypes = DTYPES if fmt == "zip" else [d for d in DTYPES if d not in (torch.uint16, torch.uint32, torch.uint64)]
    sd = {str(dt).split(".")[1]: (torch.randn(3, 4, generator=g) * 50).abs().to(dt) for dt in dtypes}
    sd["int64_negative"] = -(torch.arange(12) * 1000).reshape(3, 4)
    if fmt == "zip":
        sd["uint32_view"] = sd["uint32"].t()  # a view over an untyped storage
    path = save_torch(sd, tmp_path / "m.pt", fmt)
    same(dw.load(path), torch.load(path))


@pytest.mark.parametrize("fmt", FORMATS)
def test_bfloat16_loads_as_bfloat16_bit_for_bit(tmp_path, fmt):
    pytest.importorskip("ml_dtypes")
    t = torch.tensor([1.5, -2.25, 3e38, 1e-40, float("inf"), float("nan")], dtype=torch.bfloat16)
    p = torch.nn.Parameter(torch.randn(3, 2).bfloat16())
    path = save_torch({"w": t, "p": p, "view": t[::2]}, tmp_path / "b.pt", fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no widening, so no warning
        out = dw.load(path)
    assert out["w"].dtype == dw.bfloat16 and out["view"].dtype == dw.bfloat16
    np.testing.assert_array_equal(out["w"].array.view(np.uint16), t.view(torch.int16).numpy().view(np.uint16))
    np.testing.assert_array_equal(out["view"].float().numpy(), t[::2].float().numpy())
    assert out["p"].dtype == dw.bfloat16 and out["p"].requires_grad
    np.testing.assert_array_equal(out["p"].detach().float().numpy(), p.detach().float().numpy())


def test_dw_save_of_bfloat16_is_read_by_torch_as_bfloat16(tmp_path):
    pytest.importorskip("ml_dtypes")
    st_torch = pytest.importorskip("safetensors.torch")
    w = dw.tensor([1.5, -2.25, 3e38, 1e-40, 3.140625], dtype=dw.bfloat16)
    dw.save({"w": w, "n": dw.arange(3)}, tmp_path / "w.safetensors")
    theirs = st_torch.load_file(str(tmp_path / "w.safetensors"))
    assert theirs["w"].dtype == torch.bfloat16
    assert theirs["w"].view(torch.int16).tolist() == torch.from_numpy(w.array.view(np.int16).copy()).tolist()
    back = dw.load(tmp_path / "w.safetensors")
    assert back["w"].dtype == dw.bfloat16 and back["w"].tolist() == w.tolist()
    nested = {"model": {"w": w}, "step": 3}  # the nested key scheme and checkpoints carry bfloat16 too
    dw.save(nested, tmp_path / "n.safetensors")
    assert dw.load(tmp_path / "n.safetensors")["model"]["w"].tolist() == w.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_bfloat16_without_ml_dtypes_is_widened_to_float32_and_said_so(tmp_path, fmt, monkeypatch):
    monkeypatch.setattr(backend, "_bfloat16", [None])  # as if ml_dtypes were not installed
    t = torch.tensor([1.5, -2.25, 3e38, 1e-40], dtype=torch.bfloat16)
    path = save_torch({"w": t}, tmp_path / "b.pt", fmt)
    with pytest.warns(UserWarning, match=r"bfloat16 tensors were widened to float32.*deepwise\[bf16\]"):
        out = dw.load(path)
    assert out["w"].dtype == np.float32
    np.testing.assert_array_equal(out["w"].array, t.float().numpy())


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_non_contiguous_shared_storages_and_scalars(tmp_path, fmt):
    base = torch.arange(24.0).reshape(2, 3, 4)
    obj = {"t": base.transpose(0, 2), "slice": base[1, :, 1:3], "step": base.reshape(-1)[::5],
           "expand": torch.arange(3.0).expand(4, 3), "whole": base, "perm": base.permute(2, 0, 1),
           "scalar": torch.tensor(7, dtype=torch.int64), "zero": torch.zeros(0, 3), "f": 0.5, "i": -3,
           "big": 2**70, "s": "text", "none": None, "flag": True, "nan": float("nan"), "tup": (1, 2.0)}
    path = save_torch(obj, tmp_path / "v.pt", fmt)
    out = dw.load(path)
    same(out, torch.load(path))
    out["slice"].array[0, 0] = -1.0  # views come back as tensors that own their data
    assert out["whole"].array[1, 0, 1] == 13.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_optimizer_and_training_checkpoint_round_trip(tmp_path, fmt):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 1, 4, 4)).sum().backward()
    opt.step()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "losses": [0.5, 0.25]}
    path = save_torch(ckpt, tmp_path / "ckpt.pt", fmt)
    out = dw.load(path)
    same(out, torch.load(path))
    assert out["optimizer"]["state"][0]["step"].array == 1.0
    assert out["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_a_torch_state_dict_loads_into_the_same_deepwise_model(tmp_path):
    torch.manual_seed(1)
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                             torch.nn.Flatten(), torch.nn.Linear(12, 2))
    tm(torch.randn(5, 1, 4, 4))  # moves the batch-norm running statistics away from their defaults
    tm.eval()
    path = tmp_path / "block.pt"
    torch.save(tm.state_dict(), path)
    dm = dw.nn.Sequential(dw.nn.Conv2d(1, 3, 3), dw.nn.BatchNorm2d(3), dw.nn.ReLU(), dw.nn.Flatten(),
                          dw.nn.Linear(12, 2))
    dm.load_state_dict(dw.load(path))
    dm.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(dm(dw.tensor(x)).array, want, rtol=1e-5, atol=1e-6)


def test_parameters_keep_their_kind_and_requires_grad(tmp_path):
    path = tmp_path / "p.pt"
    torch.save({"p": torch.nn.Parameter(torch.ones(2)), "q": torch.nn.Parameter(torch.ones(1), False),
                "g": torch.ones(2, requires_grad=True)}, path)
    out = dw.load(path)
    assert isinstance(out["p"], dw.nn.Parameter) and out["p"].requires_grad
    assert isinstance(out["q"], dw.nn.Parameter) and not out["q"].requires_grad
    assert not isinstance(out["g"], dw.nn.Parameter) and out["g"].requires_grad


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_file_objects_and_pickle_protocols(fmt, protocol):
    buf = io.BytesIO()
    obj = {"w": torch.arange(6.0).reshape(2, 3).t(), "n": [torch.tensor(1.5), {"k": 2}]}
    torch.save(obj, buf, pickle_protocol=protocol, **FORMATS[fmt])
    buf.seek(0)
    same(dw.load(buf), obj)


def test_reading_needs_no_torch(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"w": torch.arange(3.0)}, path)
    code = ("import sys; sys.modules['torch'] = None; import deepwise as dw; "
            f"print(dw.load({str(path)!r})['w'].array.tolist())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0.0, 1.0, 2.0]"


# ---------------------------------------------------------------------------------- hostile files

def zip_with(program: bytes, path, storages=()):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", program)
        z.writestr("archive/byteorder", "little")
        for key, data in storages:
            z.writestr(f"archive/data/{key}", data)
    return path


def legacy_with(program: bytes, path):
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    path.write_bytes(head + program + pickle.dumps([], protocol=2))
    return path


class _Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        import os
        return (os.system, (self.cmd,))


def _binunicode(raw: bytes) -> bytes:
    return b"X" + struct.pack("<I", len(raw)) + raw


def _payloads(marker):
    """(label, pickle program, phrase the error names) — each would create ``marker`` if unpickled."""
    m = str(marker).encode()
    touch = b"touch " + m
    return [
        ("open via GLOBAL+REDUCE", pickle.dumps({"w": _Trap(str(marker))}, protocol=2), "io.open"),
        ("os.system protocol 2", pickle.dumps(_System(touch.decode()), protocol=2), "system"),
        ("os.system STACK_GLOBAL", pickle.dumps(_System(touch.decode()), protocol=4), "system"),
        ("os.system protocol 0", pickle.dumps(_System(touch.decode()), protocol=0), "system"),
        ("builtins.eval", b"\x80\x02cbuiltins\neval\n(" + _binunicode(b"__import__('os').system('" + touch + b"')")
         + b"tR.", "builtins.eval"),
        ("builtins.getattr", b"\x80\x02cbuiltins\ngetattr\n(cos\nsystem\nX\x04\x00\x00\x00nametR.", "getattr"),
        ("copyreg extension code", b"\x80\x02\x82\x01(" + _binunicode(touch) + b"tR.", "EXT1"),
        ("INST opcode", b"(" + _binunicode(touch) + b"ios\nsystem\n.", "INST"),
        ("OBJ opcode", b"\x80\x02(cos\nsystem\n" + _binunicode(touch) + b"o.", "system"),
        ("NEWOBJ opcode", b"\x80\x02c__main__\nEvil\n)\x81.", "__main__.Evil"),
        ("numpy reconstruct", b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R.",
         "numpy.core.multiarray._reconstruct"),
        ("numpy scalar", b"\x80\x02cnumpy.core.multiarray\nscalar\n.", "numpy.core.multiarray.scalar"),
        ("torch subclass rebuild", b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n"
         b"(ctorch._utils\n_rebuild_tensor_v2\nc__main__\nEvil\n)}tR.", "__main__.Evil"),
        ("torch.load itself", b"\x80\x02ctorch\nload\n.", "torch.load"),
        ("BUILD on a tensor-ish value", b"\x80\x02]}b.", "BUILD"),
    ]


def test_the_trap_payloads_are_live(tmp_path):
    # control: the first payload really creates its marker when unpickled, so the refusals below mean something
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Trap(str(marker)))).close()
    assert marker.exists()


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_malicious_pickles_are_refused_and_run_nothing(tmp_path, container):
    marker = tmp_path / "PWNED"
    for i, (label, program, phrase) in enumerate(_payloads(marker)):
        path = tmp_path / f"evil{i}.pt"
        (zip_with if container == "zip" else legacy_with)(program, path)
        with pytest.raises(TorchFormatError) as info:
            dw.load(path)
        msg = str(info.value)
        assert str(path) in msg, (label, msg)
        assert phrase in msg, (label, msg)
        assert not marker.exists(), label


def test_hostile_tensor_records_are_refused(tmp_path):
    def rebuild(size, stride, offset=0, numel=4):
        return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu" + b"J" + struct.pack("<i", numel) + b"tQ"
                + b"J" + struct.pack("<i", offset) + pickle.dumps(size, 2)[2:-1]
                + pickle.dumps(stride, 2)[2:-1] + b"\x89}tR.")

    data = np.arange(4, dtype=np.float32).tobytes()
    ok = zip_with(rebuild((2, 2), (2, 1)), tmp_path / "ok.pt", [("0", data)])
    np.testing.assert_array_equal(dw.load(ok).array, [[0, 1], [2, 3]])
    cases = [
        (rebuild((2, 2), (2, 1), offset=1), "reaches element 4 of a storage of 4"),
        (rebuild((4,), (5,)), "reaches element 15"),
        (rebuild((2,), (-1,)), "non-negative"),
        (rebuild((2, 2), (1,)), "differ in length"),
        (rebuild((2**20, 2**20), (0, 0)), "more than"),              # a stride-0 memory bomb
    ]
    for i, (program, phrase) in enumerate(cases):
        path = zip_with(program, tmp_path / f"bad{i}.pt", [("0", data)])
        with pytest.raises(TorchFormatError, match=phrase):
            dw.load(path)
    short = zip_with(rebuild((2, 2), (2, 1)), tmp_path / "short.pt", [("0", data[:8])])
    with pytest.raises(TorchFormatError, match="storage '0' is 8 bytes"):
        dw.load(short)
    missing = zip_with(rebuild((2, 2), (2, 1)), tmp_path / "missing.pt")
    with pytest.raises(TorchFormatError, match="no entry"):
        dw.load(missing)


def test_malformed_programs_end_in_clear_errors(tmp_path):
    cases = [
        (b"\x80\x02" + b"]" * 300 + b"(" + b"a" * 299 + b".", "nested more than|the stack|STOP"),
        (b"\x80\x02h\x05.", "memo entry 5 was never stored"),
        (b"\x80\x02]", "ends without STOP"),
        (b"\x80\x02\x8b\xff\xff\xff\x7f.", "an integer of"),
        (b"\x80\x02X\xff\xff\xff\x7f", "ends early"),
        (b"\x80\x02t.", "MARK"),
        (b"\x80\x02]].", "STOP with a malformed stack"),
        (b"\x80\x02}]K\x01s.", "cannot be hashed"),
        (b"\x80\x02(X\x07\x00\x00\x00storageX\x01\x00\x00\x00aX\x01\x00\x00\x000NK\x01tQ.", "storage of type"),
        (b"\x80\x02X\x03\x00\x00\x00abcQ.", "unknown persistent id"),
    ]
    for i, (program, phrase) in enumerate(cases):
        path = zip_with(program, tmp_path / f"m{i}.pt")
        with pytest.raises(TorchFormatError, match=phrase):
            dw.load(path)
    deep = b"\x80\x02" + b"]" * 1000 + b"a" * 999 + b"."
    with pytest.raises(TorchFormatError, match="nested more than 200 deep"):
        dw.load(zip_with(deep, tmp_path / "deep.pt"))
    selfref = b"\x80\x02]q\x00h\x00a."   # a list that holds itself comes back as such, without looping
    out = dw.load(zip_with(selfref, tmp_path / "self.pt"))
    assert out[0] is out


def test_a_zip_without_data_pkl_and_a_plain_pickle(tmp_path):
    path = tmp_path / "x.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/constants.pkl", b"")
    with pytest.raises(TorchFormatError, match="without exactly one data.pkl.*TorchScript"):
        dw.load(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(SafetensorsError, match="pickle"):
        dw.load(plain)


@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzzed_real_files_end_in_clear_errors(tmp_path, fmt):
    g = torch.Generator().manual_seed(0)
    obj = {"w": torch.randn(3, 4, generator=g), "opt": {"state": {0: {"step": torch.tensor(2.0)}},
                                                        "param_groups": [{"lr": 0.1, "params": [0]}]}}
    original = save_torch(obj, tmp_path / "real.pt", fmt).read_bytes()
    rng = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            kind = rng.random()
            at = rng.randrange(len(data))
            if kind < 0.6:
                data[at] = rng.randrange(256)
            elif kind < 0.8:
                del data[at:at + rng.randint(1, 16)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
        path = tmp_path / f"f{i}.pt"
        path.write_bytes(bytes(data))
        try:
            dw.load(path)
            outcomes["loaded"] += 1
        except ValueError as exc:  # TorchFormatError and SafetensorsError are ValueErrors
            assert str(path) in str(exc) or "<" in str(exc), str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 50, outcomes


# ---------------------------------------------------------------------------------- dw.save nested

def test_save_and_load_nested_objects_through_file_objects():
    w = dw.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    obj = {"model": {"fc.weight": w, "fc.bias": dw.zeros(3)},
           "optimizer": {"state": {0: {"step": dw.tensor(3.0), "exp_avg": dw.ones(2, 3)}},
                         "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0], "foreach": None}]},
           "epoch": 7, "best": float("inf"), "note": "run 1", "done": False}
    buf = io.BytesIO()
    dw.save(obj, buf)
    buf.seek(0)
    back = dw.load(buf)
    assert back["epoch"] == 7 and back["best"] == math.inf and back["note"] == "run 1" and back["done"] is False
    assert list(back["optimizer"]["state"]) == [0]  # int keys stay ints
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["optimizer"]["param_groups"][0]["foreach"] is None
    np.testing.assert_array_equal(back["model"]["fc.weight"].array, w.array)
    assert back["optimizer"]["state"][0]["exp_avg"].dtype == np.float32


def test_nested_files_use_the_documented_key_scheme(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    dw.save({"model": {"fc.weight": dw.ones(2)}, "optimizer": {"state": {0: {"exp_avg": dw.zeros(2)}}},
             "hist": [dw.ones(1), 2]}, path, metadata={"arch": "mlp"})
    arrays, meta = load_file_with_metadata(path)
    assert sorted(arrays) == ["hist.0", "model.fc.weight", "optimizer.state.0.exp_avg"]
    assert meta["arch"] == "mlp"
    assert '"dict"' in meta[STRUCTURE_KEY] and '"tensor":"model.fc.weight"' in meta[STRUCTURE_KEY]
    back = dw.load(path)
    assert back["hist"][1] == 2


def test_a_flat_state_dict_is_written_as_before(tmp_path):
    from deepwise.io.safetensors import save_bytes
    sd = {"w": np.arange(3, dtype=np.float32), "n": np.array(2, np.int64)}
    buf = io.BytesIO()
    dw.save(sd, buf)
    assert buf.getvalue() == save_bytes(sd)
    buf.seek(0)
    assert sorted(dw.load(buf)) == ["n", "w"]


def test_save_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="'a.b' is a object"):
        dw.save({"a": {"b": object()}}, tmp_path / "x")
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="appears twice"):
        dw.save({"l": loop}, tmp_path / "x")
    with pytest.raises(ValueError, match="both stored as 'a.b'"):
        dw.save({"a.b": dw.ones(1), "a": {"b": dw.ones(1)}}, tmp_path / "x")
    with pytest.raises(ValueError, match="reserved"):
        dw.save({"a": [1]}, tmp_path / "x", metadata={STRUCTURE_KEY: "{}"})
    assert not (tmp_path / "x").exists()
