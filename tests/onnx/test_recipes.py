"""Every recipe's model exports (at opsets 13, 17 and 21), runs in onnxruntime at another batch size than
exported and matches deepwise; ``deepwise export RUN_DIR out.onnx`` prints the check."""

import functools
import io
import json

import numpy as np
import pytest

import deepwise as dw
from deepwise import cli, recipes

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# recipes whose models cannot export with a dynamic batch, refused with a clear error: their GRUs get
# each string's length, and the translator's attention its padding mask, computed from raw arrays
# outside the recorded graph
NOT_EXPORTABLE = {"sequence-gru": "lengths were computed outside the recorded graph",
                  "sentiment": "lengths were computed outside the recorded graph",
                  "translate-dates": r"ScaledDotProductAttention in layer .*self_attn.* constant whose shape follows"}


@functools.cache
def _data(name):
    recipe = recipes.get(name)
    return recipe.data(dict(recipe.defaults, seed=0))  # loaded once per recipe, for all three opsets


def _recipe_model(name):
    recipe = recipes.get(name)
    config = dict(recipe.defaults, seed=0)
    dw.manual_seed(0)
    return recipe, config, recipe.model(config), _data(name)


@pytest.mark.parametrize("name", recipes.names())
@pytest.mark.parametrize("opset", [13, 17, 21])
def test_every_recipe_model_exports_and_matches(name, opset):
    _, _, model, splits = _recipe_model(name)
    forward, input_name, example, other = cli.export_target(model, splits)
    buf = io.BytesIO()
    if name in NOT_EXPORTABLE:
        with pytest.raises(dw.onnx.ExportError, match=NOT_EXPORTABLE[name]):
            dw.onnx.export(forward, example, buf, input_names=[input_name], dynamic_axes={input_name: {0: "b"}},
                           opset_version=opset)
        return
    model.train()
    proto = dw.onnx.export(forward, example, buf, input_names=[input_name], dynamic_axes={input_name: {0: "b"}},
                           opset_version=opset)
    assert model.training  # restored after the eval-mode run
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {input_name: other})
    model.eval()
    with dw.no_grad():
        want = forward(dw.tensor(other))
    want = want if isinstance(want, tuple) else (want,)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.shape[0] == len(other) != len(example)
        np.testing.assert_allclose(a, b.array, rtol=1e-4, atol=1e-5)


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
