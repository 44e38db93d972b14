"""TensorBoard logs: what SummaryWriter and the TensorBoard callback write reads back through the
tensorboard package's own event reader with the values written."""

import struct
import zlib

import numpy as np
import pytest

import deepwise as dw
from deepwise.utils.tensorboard import SummaryWriter

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def decode_png(data):
    """Pixels of the 8-bit, filter-0 PNGs the writer makes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, _, color, *_ = header
    c = {0: 1, 2: 3, 6: 4}[color]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(h, w, c)


def test_scalars_histograms_images_text_read_back(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal(1000).astype(np.float32)
    img = rng.random((3, 5, 7)).astype(np.float32)
    with SummaryWriter(tmp_path) as w:
        for step in range(3):
            w.add_scalar("loss/train", 1.0 / (step + 1), step)
        w.add_scalar("tensor_value", dw.tensor(2.5), 7)
        w.add_histogram("weights", dw.tensor(values), 4)
        w.add_histogram("auto", values, 5, bins="auto")
        w.add_image("picture", img, 2)
        w.add_image("grey", (img[0] * 255).astype(np.uint8), 3, dataformats="HW")
        w.add_text("notes", "**hello** deepwise", 1)
    acc = read(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("loss/train")] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert acc.Scalars("tensor_value")[0].value == 2.5 and acc.Scalars("tensor_value")[0].step == 7
    h = acc.Histograms("weights")[0]
    assert h.step == 4 and h.histogram_value.num == 1000 and sum(h.histogram_value.bucket) == 1000
    assert h.histogram_value.min == pytest.approx(values.min()) and h.histogram_value.max == pytest.approx(values.max())
    assert h.histogram_value.sum == pytest.approx(float(values.astype(np.float64).sum()), rel=1e-6)
    counts, _ = np.histogram(values, bins="auto")
    assert list(acc.Histograms("auto")[0].histogram_value.bucket) == counts.tolist()
    im = acc.Images("picture")[0]
    assert (im.step, im.width, im.height) == (2, 7, 5)
    pixels = decode_png(im.encoded_image_string)
    np.testing.assert_array_equal(pixels, np.clip(img.transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8))
    grey = decode_png(acc.Images("grey")[0].encoded_image_string)
    np.testing.assert_array_equal(grey[:, :, 0], (img[0] * 255).astype(np.uint8))
    text = acc.Tensors("notes/text_summary")[0]
    assert text.step == 1 and text.tensor_proto.string_val[0] == b"**hello** deepwise"


def test_add_scalars_writes_one_run_per_key(tmp_path):
    w = SummaryWriter(tmp_path)
    for step in range(2):
        w.add_scalars("loss", {"train": 1.0 + step, "val": 2.0 + step}, step)
    w.close()
    train = read(tmp_path / "loss_train").Scalars("loss")
    val = read(tmp_path / "loss_val").Scalars("loss")
    assert [e.value for e in train] == [1.0, 2.0] and [e.value for e in val] == [2.0, 3.0]


def test_flush_makes_events_visible_and_close_ends_the_writer(tmp_path):
    w = SummaryWriter(tmp_path, flush_secs=10_000, max_queue=1000)
    w.add_scalar("x", 1.0, 0)
    w.flush()
    assert [e.value for e in read(tmp_path).Scalars("x")] == [1.0]
    w.close()
    with pytest.raises(RuntimeError, match="is closed"):
        w.add_scalar("x", 2.0, 1)


def test_add_graph_groups_ops_by_layer(tmp_path):
    model = dw.nn.Sequential(dw.nn.Linear(4, 3), dw.nn.ReLU(), dw.nn.Linear(3, 2))
    with SummaryWriter(tmp_path) as w:
        w.add_graph(model, dw.randn(2, 4))
    graph = read(tmp_path).Graph()
    names = {n.name: n for n in graph.node}
    assert "0/weight" in names and "2/bias" in names
    ops = [n for n in graph.node if n.op == "Linear"]
    assert [n.name.split("/")[0] for n in ops] == ["0", "2"]
    assert "0/weight" in ops[0].input and "input/input_0" in ops[0].input
    assert any(n.op == "ReLU" and n.name.startswith("1/") for n in graph.node)


def test_bad_values_are_refused(tmp_path):
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="expected one number"):
            w.add_scalar("x", np.ones(3))
        with pytest.raises(ValueError, match="NaN or infinity"):
            w.add_histogram("h", np.array([1.0, np.nan]))
        with pytest.raises(ValueError, match="dataformats"):
            w.add_image("i", np.zeros((2, 3)), dataformats="CHW")
    tags = read(tmp_path).Tags()
    assert not tags["scalars"] and not tags["histograms"] and not tags["images"]


def test_callback_logs_a_fit(tmp_path):
    dw.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = dw.nn.Sequential(dw.nn.Linear(5, 8), dw.nn.ReLU(), dw.nn.Linear(8, 2))
    trainer = dw.Trainer(model, dw.optim.SGD(model.parameters(), lr=0.1), metrics=["accuracy"])
    tb = dw.callbacks.TensorBoard(tmp_path / "tb", histogram_freq=1, update_freq="batch", write_graph=True)
    history = trainer.fit(x, y, epochs=3, batch_size=16, validation_data=(x[:16], y[:16]), callbacks=[tb],
                          verbose=0)
    train, val = read(tmp_path / "tb" / "train"), read(tmp_path / "tb" / "validation")
    losses = [e.value for e in train.Scalars("epoch_loss")]
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_loss")], history.history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_accuracy")], history.history["val_accuracy"],
                               rtol=1e-6)
    assert [e.step for e in train.Scalars("epoch_loss")] == [0, 1, 2]
    assert len(train.Scalars("batch_loss")) == 12  # 4 batches x 3 epochs, against the global step
    tags = train.Tags()["histograms"]
    assert {"0.weight", "0.weight/grad", "2.bias", "2.bias/grad"} <= set(tags)
    last = train.Histograms("0.weight")[-1].histogram_value
    assert last.num == 40 and last.max == pytest.approx(float(model[0].weight.array.max()))
    assert "lr" in history.history and [e.value for e in train.Scalars("epoch_lr")] == pytest.approx([0.1] * 3)
    assert any(n.op == "Linear" for n in train.Graph().node)


def test_callback_logs_the_model_outputs_as_images(tmp_path):
    dw.manual_seed(0)
    x = np.random.default_rng(0).random((32, 1, 4, 4)).astype(np.float32)
    model = dw.nn.Sequential(dw.nn.Conv2d(1, 2, 3, padding=1), dw.nn.ReLU(), dw.nn.Conv2d(2, 1, 3, padding=1))
    trainer = dw.Trainer(model, dw.optim.SGD(model.parameters(), lr=0.01), loss="mse")
    tb = dw.callbacks.TensorBoard(tmp_path, images=x[:4])
    trainer.fit(x, x, epochs=2, batch_size=16, callbacks=[tb], verbose=0)
    acc = read(tmp_path / "train")
    assert [e.step for e in acc.Images("outputs")] == [0, 1]
    inputs = acc.Images("inputs")
    assert len(inputs) == 1 and (inputs[0].width, inputs[0].height) == (8, 8)  # a 2 x 2 grid of 4 x 4 images
    grid = decode_png(inputs[0].encoded_image_string)[:, :, 0]
    first = x[0, 0]
    want = np.clip((first - first.min()) / (first.max() - first.min()) * 255 + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(grid[:4, :4], want)
