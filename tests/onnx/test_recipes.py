"""Every recipe's model exports (at opsets 13, 17 and 21), runs in onnxruntime at another batch size than
exported and matches deepwise; ``deepwise export RUN_DIR out.onnx`` prints the check."""

import functools
import io
import json

import numpy as np
import pytest

import deepwise as dw
from deepwise import cli, recipes
from deepwise.text.classification import encode_padded

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

@functools.cache
def _data(name):
    recipe = recipes.get(name)
    return recipe.data(dict(recipe.defaults, seed=0))  # loaded once per recipe, for all three opsets


def _recipe_model(name):
    recipe = recipes.get(name)
    config = dict(recipe.defaults, seed=0)
    dw.manual_seed(0)
    return recipe, config, recipe.model(config), _data(name)


def _onnx_output(data, input_name, x):
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {input_name: x})


def _deepwise_output(forward, model, x):
    model.eval()
    with dw.no_grad():
        want = forward(dw.tensor(x))
    return want if isinstance(want, tuple) else (want,)


@pytest.mark.parametrize("name", recipes.names())
@pytest.mark.parametrize("opset", [13, 17, 21])
def test_every_recipe_model_exports_and_matches(name, opset):
    """Exported at batch 2 with a dynamic batch axis, the file runs at batch 1 and 5 and equals deepwise."""
    _, _, model, splits = _recipe_model(name)
    forward, input_name, example, other = cli.export_target(model, splits)
    buf = io.BytesIO()
    model.train()
    proto = dw.onnx.export(forward, example, buf, input_names=[input_name], dynamic_axes={input_name: {0: "b"}},
                           opset_version=opset)
    assert model.training  # restored after the eval-mode run
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "b"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "b"  # follows the input's axis
    used = {name for n in proto.graph.node for name in n.input}
    assert [i.name for i in proto.graph.initializer if i.name not in used] == []  # nothing left unused
    for batch in (other[:1], other):
        got = _onnx_output(buf.getvalue(), input_name, batch)
        want = _deepwise_output(forward, model, batch)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.shape == b.shape and a.shape[0] == len(batch) != len(example)
            np.testing.assert_allclose(a, b.array, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["sequence-gru", "sentiment"])
def test_gru_recipes_export_each_inputs_own_length(name):
    """The exported GRU classifiers read each input's own length: equal to deepwise's GRU run with
    ``lengths=`` on inputs whose padding differs from the example's."""
    _, _, model, splits = _recipe_model(name)
    x = splits.test[0]
    pad = 0 if name == "sequence-gru" else model.pad_index
    lengths = (x != pad).sum(axis=1)
    order = np.argsort(lengths)
    example = x[order[-2:]]  # the two longest, exported
    batch = x[order[np.linspace(0, len(order) - 3, 6).astype(int)]]  # shortest to nearly longest
    assert len(set((batch != pad).sum(axis=1))) > 2
    buf = io.BytesIO()
    dw.onnx.export(model, example, buf, input_names=["ids"], dynamic_axes={"ids": {0: "b"}})
    (got,) = _onnx_output(buf.getvalue(), "ids", batch)
    model.eval()
    with dw.no_grad():  # the same model as a GRU run to each length
        ids = dw.tensor(batch)
        _, h = model.gru(model.embed(ids), lengths=np.maximum((batch != pad).sum(axis=1), 1))
        want = model.head(h[-1]).array
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_translator_export_follows_the_source_padding():
    """translate-dates: the source padding mask is computed inside the exported graph, so a batch of
    sources of other lengths than the example's gives deepwise's logits."""
    _, _, model, splits = _recipe_model("translate-dates")
    x = splits.test[0]
    src_pad = (x[:, : model.src_len] == model.pad_index).sum(axis=1)
    order = np.argsort(src_pad)
    example, batch = x[order[:2]], x[order[-4:]]  # exported on the longest sources, run on the shortest
    assert src_pad[order[-1]] > src_pad[order[0]]
    buf = io.BytesIO()
    dw.onnx.export(model, example, buf, input_names=["ids"], dynamic_axes={"ids": {0: "b"}})
    (got,) = _onnx_output(buf.getvalue(), "ids", batch)
    (want,) = _deepwise_output(model, model, batch)
    np.testing.assert_allclose(got, want.array, rtol=1e-4, atol=1e-5)


def test_cli_export_prints_inputs_outputs_and_the_check(tmp_path, capsys):
    recipe, config, model, _ = _recipe_model("digits-cnn")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dict(config, recipe=recipe.name, epochs=1, device="cpu")))
    dw.save(model.state_dict(), run / "best.safetensors")
    out = tmp_path / "digits.onnx"
    assert cli.main(["export", str(run), str(out)]) == 0
    text = capsys.readouterr().out
    assert "inputs:  input ['batch', 1, 8, 8]" in text
    assert "outputs: output_0" in text and ", 10]" in text
    diff = float(text.split("largest difference ")[1].split()[0])
    assert diff < 1e-4
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert cli.main(["export", str(run), str(out)]) == 2  # refuses to overwrite without --force


def _run_dir(tmp_path, name, **settings):
    """A run folder as ``deepwise train`` leaves it: config.json and the (untrained) best weights."""
    recipe = recipes.get(name)
    config = dict(recipe.defaults, seed=0, **settings)
    dw.manual_seed(0)
    model = recipe.model(config)
    run = tmp_path / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dict(config, recipe=name, epochs=1, device="cpu")))
    dw.save(model.state_dict(), run / "best.safetensors")
    return recipe, config, model, run


def _export(run, out, capsys):
    assert cli.main(["export", str(run), str(out)]) == 0
    text = capsys.readouterr().out
    diff = float(text.split("largest difference ")[1].split()[0])
    assert diff < 1e-4
    return text


def _ort_ids(path, ids):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": ids})[0]


@pytest.mark.parametrize("name", ["chars-lstm", "chars-gpt"])
def test_cli_export_of_the_character_models_reads_the_recipes_ids(name, tmp_path, capsys):
    """chars-lstm / chars-gpt: the file takes a window of character ids from the recipe's vocab and
    gives the logits deepwise's model gives."""
    recipe, config, model, run = _run_dir(tmp_path, name)
    out = tmp_path / f"{name}.onnx"
    text = _export(run, out, capsys)
    window = len(_data(name).test[0][0])
    assert f"inputs:  input ['batch', {window}]" in text
    vocab = recipe.vocab()
    prompt = ("To be, or not to be, that is the question. " * 3)[:window]
    ids = np.asarray([vocab.encode(prompt)], dtype=np.int64)
    model.eval()
    with dw.no_grad():
        want = model(dw.tensor(ids)).array
    np.testing.assert_allclose(_ort_ids(out, ids), want, rtol=1e-4, atol=1e-5)
    assert f"outputs: output_0 ['batch', {len(vocab)}, {window}]" in text


@pytest.mark.parametrize("arch", ["gru", "transformer"])
def test_cli_export_of_sentiment_on_a_users_tsv(arch, tmp_path, capsys):
    """sentiment trained on an SST-2-style TSV of the user's: export rebuilds that run's vocab (the
    weights fit it), and the file classifies a sentence encoded with it as deepwise's predict does."""
    rng = np.random.default_rng(0)
    words = ["good", "bad", "great", "awful", "food", "film", "plot", "service", "fine", "slow"]
    lines = ["sentence\tlabel"] + [f"{' '.join(rng.choice(words, rng.integers(2, 9)))}\t{i % 2}" for i in range(200)]
    tsv = tmp_path / "train.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    recipe, config, model, run = _run_dir(tmp_path, "sentiment", data=str(tsv), arch=arch)
    assert len(recipe.vocab(config)) == len(words) + 2  # <unk>, <pad> and the file's words
    out = tmp_path / "sentiment.onnx"
    text = _export(run, out, capsys)
    assert "inputs:  input ['batch', 48]" in text and "outputs: output_0 ['batch', 2]" in text
    ids, _ = encode_padded(recipe.vocab(config), ["great food , slow service", "awful"], 48,
                           pad_index=recipe.vocab(config)["<pad>"])
    trainer = recipe.trainer(model, config)
    np.testing.assert_allclose(_ort_ids(out, ids), trainer.predict(ids), rtol=1e-4, atol=1e-5)


def test_cli_export_of_the_translator_and_the_parity_gru(tmp_path, capsys):
    """translate-dates: ids of the source and the decoder input side by side (32 + 32); sequence-gru:
    a padded bit string. Both as the recipes encode their inputs."""
    recipe, config, model, run = _run_dir(tmp_path, "translate-dates")
    out = tmp_path / "dates.onnx"
    text = _export(run, out, capsys)
    assert "inputs:  input ['batch', 64]" in text
    vocab = recipe.vocab()
    src = recipe.encode_sources(vocab, ["Tuesday, March 5, 2024"])
    tgt = np.full((1, recipe.tgt_len), vocab["\x00"], dtype=np.int64)
    tgt[0, 0] = vocab["\x02"]
    ids = np.concatenate([src, tgt], axis=1)
    model.eval()
    with dw.no_grad():
        want = model(dw.tensor(ids)).array
    np.testing.assert_allclose(_ort_ids(out, ids), want, rtol=1e-4, atol=1e-5)

    recipe, config, model, run = _run_dir(tmp_path, "sequence-gru")
    out = tmp_path / "parity.onnx"
    assert "inputs:  input ['batch', 30]" in _export(run, out, capsys)
    bits = np.zeros((2, 30), dtype=np.int64)
    bits[0, :5] = [2, 1, 2, 2, 1]  # '10110' then padding
    bits[1, :] = 2
    model.eval()
    with dw.no_grad():
        want = model(dw.tensor(bits)).array
    np.testing.assert_allclose(_ort_ids(out, bits), want, rtol=1e-4, atol=1e-5)
