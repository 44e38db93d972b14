"""dw.onnx.export: every layer family exports, passes onnx's full check, and runs in onnxruntime at
another batch size than exported with deepwise's eval output (rtol 1e-4), at opsets 13, 17 and 21."""

import io

import numpy as np
import pytest

import deepwise as dw

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

OPSETS = [13, 17, 21]


def run_onnx(data, *arrays):
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), arrays)})


def roundtrip(model, example, other, opset, dynamic=None, **kw):
    """Export at ``example``'s batch size, run at ``other``'s; compare with deepwise in eval mode."""
    examples = example if isinstance(example, tuple) else (example,)
    others = other if isinstance(other, tuple) else (other,)
    names = [f"in{i}" for i in range(len(examples))]
    dynamic = dynamic if dynamic is not None else {n: {0: "batch"} for n in names}
    buf = io.BytesIO()
    proto = dw.onnx.export(model, examples, buf, input_names=names, dynamic_axes=dynamic, opset_version=opset, **kw)
    onnx.checker.check_model(proto, full_check=True)
    got = run_onnx(buf.getvalue(), *others)
    mod = model.__self__ if hasattr(model, "__self__") else model
    was = mod.training
    mod.eval()
    with dw.no_grad():
        want = model(*[dw.tensor(a) for a in others])
    mod.train(was)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.array, rtol=1e-4, atol=1e-5)
    return proto


def images(n, c=3, h=8, w=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


@pytest.mark.parametrize("opset", OPSETS)
def test_dense_layers_and_activations(opset):
    dw.manual_seed(0)
    m = dw.nn.Sequential(dw.nn.Linear(6, 16), dw.nn.ReLU(), dw.nn.Linear(16, 16), dw.nn.Tanh(), dw.nn.Linear(16, 8),
                         dw.nn.GELU(), dw.nn.Linear(8, 8), dw.nn.LeakyReLU(0.1), dw.nn.Linear(8, 8), dw.nn.ELU(),
                         dw.nn.Linear(8, 8), dw.nn.SiLU(), dw.nn.Linear(8, 8), dw.nn.Sigmoid(), dw.nn.Linear(8, 4),
                         dw.nn.Softplus(), dw.nn.LogSoftmax(dim=1))
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    roundtrip(m, x, np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32), opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_conv_pool_norm_dropout(opset):
    dw.manual_seed(0)
    m = dw.nn.Sequential(
        dw.nn.Conv2d(3, 8, 3, padding=1), dw.nn.BatchNorm2d(8), dw.nn.ReLU(), dw.nn.MaxPool2d(2),
        dw.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False), dw.nn.GroupNorm(2, 8),
        dw.nn.AvgPool2d(2, padding=1, count_include_pad=False), dw.nn.Dropout(0.5), dw.nn.Flatten(),
        dw.nn.LayerNorm(32), dw.nn.Linear(32, 5))
    m(dw.tensor(images(4)))  # move batch-norm statistics off their defaults
    roundtrip(m, images(2), images(6, seed=3), opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_transposed_conv_and_adaptive_pool(opset):
    dw.manual_seed(0)
    m = dw.nn.Sequential(dw.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), dw.nn.ReLU(),
                         dw.nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1), dw.nn.AdaptiveAvgPool2d(1),
                         dw.nn.Flatten())
    roundtrip(m, images(2, h=4, w=4), images(3, h=4, w=4, seed=4), opset)


@pytest.mark.parametrize("opset", OPSETS)
def test_embedding_with_integer_input(opset):
    dw.manual_seed(0)
    m = dw.nn.Sequential(dw.nn.Embedding(20, 6), dw.nn.Flatten(), dw.nn.Linear(6 * 5, 3))
    ids = np.random.default_rng(0).integers(0, 20, (2, 5))
    roundtrip(m, ids, np.random.default_rng(1).integers(0, 20, (7, 5)), opset)


class _Seq(dw.nn.Module):
    def __init__(self, kind, **kw):
        super().__init__()
        self.rnn = getattr(dw.nn, kind)(4, 5, **kw)
        self.batch_first = kw.get("batch_first", False)

    def forward(self, x):
        out, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return out, h


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("settings", [{}, {"bidirectional": True}, {"num_layers": 2, "batch_first": True},
                                      {"num_layers": 2, "bidirectional": True}, {"bias": False}])
@pytest.mark.parametrize("opset", OPSETS)
def test_recurrent_layers_in_every_direction_and_depth(kind, settings, opset):
    dw.manual_seed(0)
    m = _Seq(kind, **settings)
    bf = settings.get("batch_first", False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4) if bf else (6, 2, 4)).astype(np.float32)
    x2 = rng.standard_normal((5, 6, 4) if bf else (6, 5, 4)).astype(np.float32)
    axis = 0 if bf else 1
    dyn = {"in0": {axis: "batch"}}
    roundtrip(m, x, x2, opset, dynamic=dyn)


def test_rnn_relu_and_recurrent_ops_are_onnx_recurrent_nodes():
    dw.manual_seed(0)
    m = _Seq("RNN", nonlinearity="relu")
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    proto = roundtrip(m, x, np.random.default_rng(1).standard_normal((3, 4, 4)).astype(np.float32), 17,
                      dynamic={"in0": {1: "batch"}})
    assert [n.op_type for n in proto.graph.node].count("RNN") == 1
    lstm = roundtrip(_Seq("LSTM"), x, x, 17, dynamic={})
    assert [n.op_type for n in lstm.graph.node].count("LSTM") == 1


@pytest.mark.parametrize("opset", OPSETS)
def test_attention_exports_as_its_decomposition(opset):
    if not hasattr(dw.nn, "MultiheadAttention"):
        pytest.skip("nn.MultiheadAttention is not part of this build")

    class Block(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = dw.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            out, _ = self.attn(x, x, x, need_weights=False)
            return out

    dw.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    proto = roundtrip(Block(), x, np.random.default_rng(1).standard_normal((3, 5, 8)).astype(np.float32), opset)
    ops = {n.op_type for n in proto.graph.node}
    assert {"MatMul", "Softmax"} <= ops


@pytest.mark.parametrize("opset", OPSETS)
def test_causal_scaled_dot_product_attention(opset):
    class Causal(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = dw.nn.Linear(4, 4)

        def forward(self, x):
            q = self.q(x)
            return dw.nn.functional.scaled_dot_product_attention(q, x, x, is_causal=True)

    if not hasattr(dw.nn.functional, "scaled_dot_product_attention"):
        pytest.skip("scaled_dot_product_attention is not part of this build")
    dw.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    roundtrip(Causal(), x, np.random.default_rng(1).standard_normal((4, 5, 4)).astype(np.float32), opset)


def test_train_mode_model_exports_eval_behaviour_and_stays_in_train_mode():
    dw.manual_seed(0)
    m = dw.nn.Sequential(dw.nn.Linear(4, 8), dw.nn.BatchNorm1d(8), dw.nn.Dropout(0.9), dw.nn.Linear(8, 2))
    m(dw.randn(16, 4))
    m.train()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    roundtrip(m, x, x, 17)  # compared against eval mode: dropout off, running statistics
    assert m.training and all(mod.training for mod in m.modules())


def test_parameters_are_initializers_named_by_state_dict_keys():
    dw.manual_seed(0)
    m = dw.nn.Sequential(dw.nn.Conv2d(1, 2, 3), dw.nn.BatchNorm2d(2), dw.nn.Flatten(), dw.nn.Linear(8, 3))
    proto = dw.onnx.export(m, dw.randn(1, 1, 4, 4), io.BytesIO())
    inits = {i.name: i for i in proto.graph.initializer}
    want = {k for k in m.state_dict() if not k.endswith("num_batches_tracked")}
    assert want <= set(inits)
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(inits["3.weight"]), m[3].weight.array)


def test_dynamic_batch_is_not_baked_into_reshape_or_flatten():
    dw.manual_seed(0)

    class Net(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = dw.nn.Linear(12, 2)

        def forward(self, x):
            return self.fc(x.reshape(x.shape[0], -1)).reshape(x.shape[0], 2, 1).flatten(1)

    proto = roundtrip(Net(), images(2, c=3, h=2, w=2), images(9, c=3, h=2, w=2), 17)
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert inputs["in0"] == ["batch", 3, 2, 2]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    targets = [inits[n.input[1]] for n in proto.graph.node if n.op_type == "Reshape"]
    assert len(targets) == 3  # reshape, reshape, flatten
    assert all(t[0] in (0, -1) for t in targets), targets  # the batch is copied or inferred, never 2


def test_an_op_without_converter_names_op_and_layer():
    class Odd(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = dw.nn.Linear(3, 3)

        def forward(self, x):
            return dw.nn.functional.mse_loss(self.fc(x), x)

    with pytest.raises(dw.onnx.ExportError, match=r"op MSELoss \(in layer 'Odd', Odd\) has no ONNX converter"):
        dw.onnx.export(Odd(), dw.randn(2, 3), io.BytesIO())


class _Scatter(dw.nn.Module):
    def forward(self, x):
        return x.scatter_add(1, dw.tensor(np.array([[0, 0, 2]] * x.shape[0], np.int64)), x * 2)


@pytest.mark.parametrize("opset", [16, 17, 21])
def test_scatter_add_from_opset_16(opset):
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    roundtrip(_Scatter(), x, x, opset, dynamic={})


def test_an_op_needing_a_newer_opset_says_which():
    with pytest.raises(dw.onnx.ExportError, match=r"op ScatterAdd \(in layer '_Scatter', _Scatter\) needs opset >= 16"):
        dw.onnx.export(_Scatter(), dw.randn(2, 3), io.BytesIO(), opset_version=13)


# Function subclasses that never appear in an inference graph: backward helpers and losses
_TRAINING_ONLY = ("Grad", "Grads", "Backward", "Scatter", "Gather", "Loss", "CrossEntropy", "KLDiv")


def test_every_forward_op_has_a_converter():
    import importlib
    import inspect
    import pkgutil

    from deepwise import ops
    from deepwise.autograd.function import Function

    missing = []
    for info in pkgutil.iter_modules(ops.__path__):
        mod = importlib.import_module(f"deepwise.ops.{info.name}")
        for name, cls in vars(mod).items():
            if (inspect.isclass(cls) and issubclass(cls, Function) and cls.__module__ == mod.__name__
                    and not name.startswith("_") and not name.endswith(_TRAINING_ONLY)
                    and not name.startswith(("BinaryCrossEntropy", "NLLLoss", "CrossEntropy"))):
                if name not in dw.onnx.CONVERTERS:
                    missing.append(f"{info.name}.{name}")
    assert not missing, f"ops without an ONNX converter (add one in deepwise/onnx/): {missing}"


def test_export_errors_are_clear():
    m = dw.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="opset_version must be between 13 and 21"):
        dw.onnx.export(m, dw.randn(1, 2), io.BytesIO(), opset_version=9)
    with pytest.raises(ValueError, match="dynamic_axes names \\['nope'\\]"):
        dw.onnx.export(m, dw.randn(1, 2), io.BytesIO(), dynamic_axes={"nope": {0: "b"}})
    with pytest.raises(ValueError, match="2 input names for 1 inputs"):
        dw.onnx.export(m, dw.randn(1, 2), io.BytesIO(), input_names=["a", "b"])


def test_recurrent_lengths_computed_outside_the_graph_are_refused():
    class Masked(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = dw.nn.GRU(3, 4, batch_first=True)

        def forward(self, x):
            _, h = self.gru(x, lengths=np.array([2, 3]))
            return h

    with pytest.raises(dw.onnx.ExportError, match="lengths were computed outside the recorded graph"):
        dw.onnx.export(Masked(), dw.randn(2, 3, 3), io.BytesIO())


@pytest.mark.parametrize("opset", OPSETS)
def test_transformer_encoder_layer(opset):
    if not hasattr(dw.nn, "TransformerEncoderLayer"):
        pytest.skip("nn.TransformerEncoderLayer is not part of this build")
    dw.manual_seed(0)
    layer = dw.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 4, 8)).astype(np.float32)
    roundtrip(layer, x, np.random.default_rng(1).standard_normal((5, 4, 8)).astype(np.float32), opset)


@pytest.mark.parametrize("opset", [13, 21])
def test_constants_and_expands_made_to_the_batch_size_follow_it(opset):
    """ones made to the batch size and a parameter expanded to it take the graph input's batch size."""

    class Widen(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = dw.nn.Parameter(dw.randn(1, 3))

        def forward(self, x):
            n = x.shape[0]
            return dw.cat([x, dw.ones(n, 1), self.b.expand(n, 3)], dim=1) * 2

    dw.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    proto = roundtrip(Widen(), x, np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32), opset)
    assert "Shape" in {n.op_type for n in proto.graph.node}  # the size is read from the input


def test_a_constant_that_follows_the_batch_size_in_value_is_refused():
    class Counts(dw.nn.Module):
        def forward(self, x):
            return x + dw.tensor(np.arange(x.shape[0], dtype=np.float32)[:, None])

    with pytest.raises(dw.onnx.ExportError, match="argument 1 is a constant whose shape follows the dynamic axes"):
        dw.onnx.export(Counts(), dw.randn(2, 3), io.BytesIO(), input_names=["x"], dynamic_axes={"x": {0: "b"}})
