"""nn.Module, nn.Parameter and the containers: registration, traversal, state dicts, hooks, modes,
conversion and repr, checked against PyTorch where it has the same thing."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn as nn
from deepwise.tensor import Tensor


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.scale = nn.Parameter(dw.ones(4))
        self.register_buffer("count", dw.zeros(1))
        self.register_buffer("scratch", dw.zeros(2), persistent=False)

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block()
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 2)])
        self.head = nn.Sequential(OrderedDict(drop=nn.Dropout(0.1), out=nn.Linear(2, 1)))

    def forward(self, x):
        x = self.first(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def _torch_mlp(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Linear(64, 128), tnn.ReLU(), tnn.Dropout(0.2), tnn.Linear(128, 10))


def _dw_mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))


# ------------------------------------------------------------------------------------ Parameter
def test_parameter_is_leaf_float32_and_shares_tensor_data():
    t = dw.tensor(np.arange(3.0))
    p = nn.Parameter(t)
    assert isinstance(p, Tensor) and p.is_leaf and p.requires_grad
    assert p.dtype == dw.float32 and p.array is t.array
    assert nn.Parameter(np.zeros(2)).dtype == dw.float32  # float64 data follows the float32 policy
    assert not nn.Parameter(dw.ones(2), requires_grad=False).requires_grad
    assert repr(nn.Parameter(dw.ones(2))) == "Parameter containing:\ntensor([1., 1.], requires_grad=True)"
    with pytest.raises(RuntimeError, match="floating-point"):
        nn.Parameter(dw.tensor([1, 2]))


def test_parameter_repr_matches_torch(torch):
    assert repr(nn.Parameter(dw.ones(2))) == repr(torch.nn.Parameter(torch.ones(2)))


def test_ops_on_parameters_return_plain_tensors():
    p = nn.Parameter(dw.ones(3))
    y = p * 2
    assert type(y) is Tensor and not y.is_leaf
    y.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2, 2, 2])


# --------------------------------------------------------------------------------- registration
def test_registration_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == [
        "first.scale", "first.fc.weight", "first.fc.bias",
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "head.out.weight", "head.out.bias",
    ]  # a module's own parameters come before its children's (PyTorch's order)
    assert [n for n, _ in net.named_modules()] == [
        "", "first", "first.fc", "first.act", "layers", "layers.0", "layers.1", "head", "head.drop", "head.out",
    ]
    assert [n for n, _ in net.named_children()] == ["first", "layers", "head"]
    assert [n for n, _ in net.named_buffers()] == ["first.count", "first.scratch"]
    assert len(list(net.parameters())) == 9
    assert len(list(net.parameters(recurse=False))) == 0
    assert net.first.fc is net.get_submodule("first.fc")
    assert net.num_parameters() == 4 + 3 * 4 + 4 + 20 + 10 + 3
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        net.get_submodule("first.nope")


def test_named_parameters_match_torch(torch):
    tnn = torch.nn

    class TBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = tnn.Linear(3, 4)
            self.act = tnn.ReLU()
            self.scale = tnn.Parameter(torch.ones(4))
            self.register_buffer("count", torch.zeros(1))
            self.register_buffer("scratch", torch.zeros(2), persistent=False)

    class TNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.first = TBlock()
            self.layers = tnn.ModuleList([tnn.Linear(4, 4), tnn.Linear(4, 2)])
            self.head = tnn.Sequential(OrderedDict(drop=tnn.Dropout(0.1), out=tnn.Linear(2, 1)))

    ours, theirs = Net(), TNet()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert [tuple(v.shape) for v in ours_sd.values()] == [tuple(v.shape) for v in theirs_sd.values()]
    assert repr(ours) == repr(theirs).replace("TNet", "Net").replace("TBlock", "Block")


def test_shared_parameters_are_deduplicated_but_keep_state_dict_keys():
    a = nn.Linear(3, 3)
    model = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(model.parameters())) == 2
    assert len(list(model.modules())) == 3  # Sequential, the Linear once, ReLU
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    tied = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    tied[1].weight = tied[0].weight
    assert [n for n, _ in tied.named_parameters()] == ["0.weight"]


def test_assignment_rules_and_errors():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'weight'.*nn.Parameter"):
        m.weight = dw.zeros(3, 2)
    m.bias = None
    assert m.bias is None and "bias" in m._parameters
    assert list(m.state_dict()) == ["weight"]
    m.note = "plain attribute"
    assert m.note == "plain attribute"
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'missing'"):
        _ = m.missing

    class Forgetful(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Forgetful()

    seq = nn.Sequential(nn.ReLU())
    with pytest.raises(TypeError, match="child module '0'"):
        seq.__setattr__("0", dw.zeros(1))
    with pytest.raises(TypeError, match="a Tensor"):
        nn.Module().register_buffer("b", np.zeros(2))
    with pytest.raises(KeyError, match="must not contain a dot"):
        nn.Module().register_parameter("a.b", None)
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("weight", dw.zeros(1))
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        nn.Module()(dw.zeros(1))


def test_delattr_and_reassignment_move_between_registries():
    m = nn.Module()
    m.w = nn.Parameter(dw.ones(1))
    m.register_buffer("b", dw.zeros(1))
    m.child = nn.ReLU()
    assert dir(m).count("w") == 1 and "child" in dir(m)
    del m.w, m.b, m.child
    assert not m._parameters and not m._buffers and not m._modules
    m.x = nn.Parameter(dw.ones(1))
    with pytest.raises(TypeError, match="cannot assign ReLU as parameter 'x'"):
        m.x = nn.ReLU()  # as in PyTorch: delete the parameter first
    m.y = nn.ReLU()
    m.y = nn.Parameter(dw.ones(1))  # a parameter replaces the module of the same name
    assert "y" not in m._modules and isinstance(m.y, nn.Parameter)
    m.b = dw.ones(1)  # not registered: a plain attribute
    assert "b" not in m._buffers
    m.register_buffer("buf", dw.zeros(1))
    m.buf = dw.ones(2)
    assert m._buffers["buf"].shape == (2,)


# ----------------------------------------------------------------------------------- state dict
def test_state_dict_keys_and_shapes_match_torch(torch):
    ours, theirs = _dw_mlp(), _torch_mlp(torch)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == list(tsd) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert [v.shape for v in sd.values()] == [tuple(v.shape) for v in tsd.values()]
    for v in sd.values():
        assert not v.requires_grad and v.dtype == dw.float32


def test_state_dict_includes_persistent_buffers_only():
    b = Block()
    assert list(b.state_dict()) == ["scale", "count", "fc.weight", "fc.bias"]
    b.count.array[...] = 7
    fresh = Block()
    fresh.load_state_dict(b.state_dict())
    assert fresh.count.item() == 7


def test_load_torch_weights_and_compare_outputs_and_grads(torch):
    ours, theirs = _dw_mlp().eval(), _torch_mlp(torch).eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    xd, xt = dw.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yd, yt = ours(xd), theirs(xt)
    np.testing.assert_allclose(yd.detach().numpy(), yt.detach().numpy(), atol=1e-5, rtol=1e-5)
    (yd * yd).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), atol=1e-4, rtol=1e-4)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)


def test_load_state_dict_copies_into_existing_arrays():
    model = _dw_mlp()
    weight = model[0].weight
    array_before = weight.array
    other = _dw_mlp()
    result = model.load_state_dict(other.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert model[0].weight is weight and weight.array is array_before  # optimizers keep valid references
    np.testing.assert_array_equal(weight.array, other[0].weight.array)
    assert weight.array is not other[0].weight.array


def test_load_state_dict_reports_every_problem_and_loads_nothing():
    model = _dw_mlp()
    before = model[0].weight.array.copy()
    sd = _dw_mlp().state_dict()
    del sd["3.bias"]
    sd["3.weight"] = dw.zeros(5, 128)
    sd["extra.weight"] = dw.zeros(1)
    sd["0.bias"] = np.zeros(7, np.float32)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(sd)
    msg = str(info.value)
    assert "Sequential" in msg
    assert 'missing key(s) in state_dict: "3.bias"' in msg
    assert 'unexpected key(s) in state_dict: "extra.weight"' in msg
    assert ("size mismatch for 3.weight: the state_dict has shape (5, 128), "
            "the model's parameter has shape (10, 128)") in msg
    assert "size mismatch for 0.bias" in msg and "(7,)" in msg
    np.testing.assert_array_equal(model[0].weight.array, before)


def test_load_state_dict_non_strict_returns_the_keys():
    model = _dw_mlp()
    sd = _dw_mlp().state_dict()
    del sd["0.bias"]
    sd["zzz"] = dw.zeros(1)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert missing == ["0.bias"] and unexpected == ["zzz"]
    np.testing.assert_array_equal(model[3].weight.array, sd["3.weight"].array)
    sd["0.weight"] = dw.zeros(1, 1)
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):  # shapes are checked anyway
        model.load_state_dict(sd, strict=False)


def test_deepcopy_gives_independent_parameters():
    model = _dw_mlp()
    clone = copy.deepcopy(model)
    assert isinstance(clone[0].weight, nn.Parameter)
    clone[0].weight.array[...] = 0
    assert np.abs(model[0].weight.array).sum() > 0
    assert list(clone.state_dict()) == list(model.state_dict())


# ---------------------------------------------------------------------------------------- hooks
def test_forward_hooks_see_and_replace_output_and_remove():
    m = nn.Linear(2, 2)
    seen = []
    h1 = m.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0].shape, out.shape)))
    x = dw.ones(3, 2)
    y = m(x)
    assert seen == [(m, (3, 2), (3, 2))]
    h2 = m.register_forward_hook(lambda mod, inp, out: out * 0)
    assert float(m(x).abs().sum()) == 0.0
    h2.remove()
    np.testing.assert_allclose(m(x).detach().numpy(), y.detach().numpy())
    h1.remove()
    m(x)
    assert len(seen) == 3  # the first hook ran for the 3 calls before its removal
    h1.remove()  # removing twice is harmless


def test_forward_pre_hook_replaces_inputs():
    m = nn.Identity()
    handle = m.register_forward_pre_hook(lambda mod, inp: (inp[0] + 1,))
    assert m(dw.zeros(2)).tolist() == [1.0, 1.0]
    handle.remove()
    with m.register_forward_pre_hook(lambda mod, inp: inp[0] * 3):  # a single value is wrapped
        assert m(dw.ones(2)).tolist() == [3.0, 3.0]
    assert m(dw.ones(2)).tolist() == [1.0, 1.0]


def test_hooks_through_sequential_capture_activations():
    model = _dw_mlp()
    acts = {}
    for name, mod in model.named_children():
        mod.register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o.shape))
    model(dw.ones(4, 64))
    assert acts == {"0": (4, 128), "1": (4, 128), "2": (4, 128), "3": (4, 10)}


# ------------------------------------------------------------------------------ modes and grads
def test_train_eval_propagates_to_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net.head.drop.training
    with pytest.raises(ValueError, match="bool"):
        net.train("yes")


def test_zero_grad_and_requires_grad():
    model = _dw_mlp()
    model(dw.ones(2, 64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    shared = model[0].weight.grad.array
    model.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0.0 for p in model.parameters())
    assert np.abs(shared).sum() > 0  # the old gradient array was replaced, not zeroed in place
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_apply_visits_children_first():
    order = []
    net = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.ReLU()))
    net.apply(lambda m: order.append(type(m).__name__))
    assert order == ["Linear", "ReLU", "Sequential", "Sequential"]

    def fill(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)

    net.apply(fill)
    assert net[0].weight.item() == 0.5


def test_to_dtype_converts_in_place_of_the_parameter_objects():
    model = Block()
    params = list(model.parameters())
    model(dw.ones(2, 3)).sum().backward()
    assert model.to(dw.float64) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.dtype == dw.float64 for p in model.parameters())
    assert all(p.grad.dtype == dw.float64 for p in model.parameters())
    assert model.count.dtype == dw.float64
    out = model(dw.ones(2, 3, dtype=dw.float64))
    assert out.dtype == dw.float64
    model.float()
    assert all(p.dtype == dw.float32 for p in model.parameters())
    with pytest.raises(TypeError, match="floating-point"):
        model.to(dw.int64)
    model.to("cpu")  # a no-op move on the CPU
    emb = nn.Embedding(4, 2)
    emb.register_buffer("ids", dw.tensor([1, 2]))
    emb.to(dw.float64)
    assert emb.ids.dtype == dw.int64  # only floating-point tensors change dtype


# --------------------------------------------------------------------------------------- repr
def test_repr_matches_torch(torch):
    assert repr(_dw_mlp()) == repr(_torch_mlp(torch))
    tnn = torch.nn
    ours = nn.Sequential(
        nn.Flatten(), nn.Sequential(nn.Linear(4, 4, bias=False), nn.GELU(approximate="tanh")),
        nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2), nn.Tanh()]),
        nn.ModuleDict({"act": nn.LeakyReLU(0.2), "emb": nn.Embedding(10, 3, padding_idx=0)}),
    )
    theirs = tnn.Sequential(
        tnn.Flatten(), tnn.Sequential(tnn.Linear(4, 4, bias=False), tnn.GELU(approximate="tanh")),
        tnn.ModuleList([tnn.Linear(2, 2), tnn.Linear(2, 2), tnn.Linear(2, 2), tnn.Tanh()]),
        tnn.ModuleDict({"act": tnn.LeakyReLU(0.2), "emb": tnn.Embedding(10, 3, padding_idx=0)}),
    )
    assert repr(ours) == repr(theirs)
    assert repr(nn.Module()) == "Module()" == repr(tnn.Module())
    assert repr(nn.ModuleList()) == repr(tnn.ModuleList())


# ---------------------------------------------------------------------------------- containers
def test_sequential_indexing_slicing_and_append():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2] and list(head._modules) == ["0", "1"]
    assert seq[1:]._modules.keys() == {"1", "2"}
    with pytest.raises(IndexError, match="out of range for 3 modules"):
        seq[3]
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3"]
    y = seq(dw.ones(5, 2))
    assert y.shape == (5, 1) and float(y.min()) > 0.0
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and isinstance(seq[1], nn.Linear)
    seq.insert(1, nn.Tanh())
    assert isinstance(seq[1], nn.Tanh) and len(seq) == 4
    seq[0] = nn.Linear(2, 3, bias=False)
    assert seq[0].bias is None
    named = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["enc.weight", "enc.bias"] and named.enc is named[0]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh(), nn.Sigmoid()])
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "ReLU", "Tanh", "Sigmoid"]
    assert list(ml._modules) == ["0", "1", "2", "3", "4"]
    assert ml[-1] is ml[4] and isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    del ml[0]
    assert isinstance(ml[0], nn.Linear) and len(ml) == 4
    ml += [nn.ReLU()]
    assert len(ml) == 5
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias"]
    with pytest.raises(NotImplementedError, match="iterate"):
        ml(dw.ones(1))

    md = nn.ModuleDict({"a": nn.Linear(1, 2), "b": nn.ReLU()})
    md["c"] = nn.Linear(2, 1)
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    assert isinstance(md.pop("b"), nn.ReLU) and list(md.keys()) == ["a", "c"]
    with pytest.raises(KeyError, match="keys are"):
        md["zzz"]


# -------------------------------------------------------------------------------------- utils
def test_parameters_to_vector_round_trip_and_clip_reexports(torch):
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1, bias=False))
    vec = nn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (3 * 2 + 2 + 2,)
    np.testing.assert_array_equal(vec.detach().numpy()[:6], model[0].weight.array.reshape(-1))
    (vec * vec).sum().backward()  # differentiable: d/dp sum(p^2) = 2p
    np.testing.assert_allclose(model[1].weight.grad.numpy(), 2 * model[1].weight.array)
    new = dw.arange(10, dtype=dw.float32)
    nn.utils.vector_to_parameters(new, model.parameters())
    np.testing.assert_array_equal(model[0].bias.array, [6.0, 7.0])
    np.testing.assert_array_equal(model[1].weight.array, [[8.0, 9.0]])
    with pytest.raises(ValueError, match="vec has 4 elements but the parameters hold 10"):
        nn.utils.vector_to_parameters(dw.zeros(4), model.parameters())
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1, bias=False))
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    np.testing.assert_array_equal(
        torch.nn.utils.parameters_to_vector(theirs.parameters()).detach().numpy(), new.numpy()
    )
    model(dw.ones(4, 3)).sum().backward()
    total = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    assert float(total) > 0.5
    norm = np.sqrt(sum(float((p.grad * p.grad).sum()) for p in model.parameters()))
    assert norm == pytest.approx(0.5, rel=1e-4)
    nn.utils.clip_grad_value_(model.parameters(), 0.01)
    assert max(float(p.grad.abs().max()) for p in model.parameters()) <= 0.01


def test_nn_namespace_exports_every_layer_family():
    for name in ["Linear", "Conv2d", "MaxPool2d", "LSTM", "GRU", "BatchNorm2d", "LayerNorm", "CrossEntropyLoss",
                 "Embedding", "Dropout2d", "Flatten", "Sequential", "ModuleList", "ModuleDict", "Module",
                 "Parameter"]:
        assert isinstance(getattr(nn, name), type), name
    import deepwise.nn.functional as F

    for name in F.__all__:
        assert callable(getattr(F, name)), name


def test_reassigning_a_child_or_a_parameter_keeps_its_place_in_the_order():
    # state_dict order is what ties checkpoints and all-reduce buckets together: replacing a layer
    # (convert_sync_batchnorm, fine-tuning heads) must not move it to the end, as in PyTorch
    from deepwise import nn

    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.ReLU())
    m[1] = nn.BatchNorm1d(2)
    setattr(m, "0", nn.Linear(2, 2))
    assert list(m._modules) == ["0", "1", "2"]
    lin = nn.Linear(2, 3)
    lin.weight = nn.Parameter(lin.weight.detach().clone())
    assert list(dict(lin.named_parameters())) == ["weight", "bias"]
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.ReLU()))
    assert list(converted.state_dict())[:4] == ["0.weight", "0.bias", "1.weight", "1.bias"]
