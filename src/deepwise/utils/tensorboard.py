"""TensorBoard logs: ``SummaryWriter`` with PyTorch's methods, and the ``TensorBoard`` callback for fit.

    from deepwise.utils.tensorboard import SummaryWriter
    writer = SummaryWriter("runs/exp1")
    writer.add_scalar("loss/train", loss.item(), step)
    writer.add_histogram("fc.weight", model.fc.weight, step)
    writer.close()                                  # then: tensorboard --logdir runs

    trainer.fit(x, y, callbacks=[dw.callbacks.TensorBoard("runs/tb", histogram_freq=1)])

Event files are written by the ``tensorboard`` package's own event-file writer and protocol buffers
(``tensorboard.summary.writer``), so TensorBoard reads them as it reads PyTorch's; no TensorFlow is
needed. Install it with the ``tensorboard`` extra. Images are encoded as PNG here (zlib, no imaging
library); ``add_graph`` records the graph autograd builds for one forward pass, each op grouped
under the layer that produced it.
"""

from __future__ import annotations

import os
import socket
import struct
import time
import zlib

import numpy as np

from deepwise import backend
from deepwise.autograd.function import keep_calls
from deepwise.autograd.mode import enable_grad, no_grad
from deepwise.onnx.graph import capture
from deepwise.tensor import Tensor
from deepwise.train.callback_base import Callback

__all__ = ["SummaryWriter", "TensorBoard"]


def _tb():
    try:
        from tensorboard.compat.proto import (  # noqa: PLC0415 - optional dependency (the `tensorboard` extra)
            event_pb2,
            graph_pb2,
            node_def_pb2,
            summary_pb2,
            tensor_pb2,
            tensor_shape_pb2,
        )
        from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: PLC0415
    except ImportError:
        raise ImportError("TensorBoard logging needs the tensorboard package: pip install 'deepwise[tensorboard]'") \
            from None
    return EventFileWriter, event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, graph_pb2, node_def_pb2


def _array(value, what) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().to("cpu").array
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"{what}: expected numbers or a tensor, got {type(value).__name__}")
    return arr


def _scalar(value, tag) -> float:
    arr = _array(value, f"add_scalar({tag!r})")
    if arr.size != 1:
        raise ValueError(f"add_scalar({tag!r}): expected one number, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, C) uint8 image, C in 1 (grey), 3 (RGB) or 4 (RGBA)."""
    h, w, c = image.shape
    color = {1: 0, 3: 2, 4: 6}[c]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * c)], axis=1)  # filter 0 per row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def _hwc(img, dataformats, tag):
    arr = _array(img, f"add_image({tag!r})")
    fmt = dataformats.upper()
    if sorted(fmt) not in (sorted("CHW"), sorted("HW")) or len(fmt) != arr.ndim:
        raise ValueError(f"add_image({tag!r}): dataformats {dataformats!r} does not fit an image of shape "
                         f"{arr.shape} (use 'CHW', 'HWC' or 'HW')")
    if fmt == "HW":
        arr = arr[:, :, None]
    else:
        arr = np.transpose(arr, [fmt.index(a) for a in "HWC"])
    if arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"add_image({tag!r}): an image has 1, 3 or 4 channels, got {arr.shape[2]}")
    if backend.is_floating(arr.dtype):  # floats are in [0, 1], as in PyTorch
        arr = np.clip(np.nan_to_num(arr) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _default_log_dir(comment):
    stamp = time.strftime("%b%d_%H-%M-%S")
    return os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")


class SummaryWriter:
    """Writes TensorBoard event files to ``log_dir`` (default ``runs/<date>_<host><comment>``), as
    ``torch.utils.tensorboard.SummaryWriter``. Events are queued and written every ``flush_secs``
    seconds, every ``max_queue`` events, on ``flush()`` and on ``close()``."""

    def __init__(self, log_dir=None, comment: str = "", purge_step=None, max_queue: int = 10,
                 flush_secs: int = 120, filename_suffix: str = ""):
        (self._EventFileWriter, self._event_pb2, self._summary_pb2, self._tensor_pb2, self._shape_pb2,
         self._graph_pb2, self._node_pb2) = _tb()
        self.log_dir = os.fspath(log_dir) if log_dir is not None else _default_log_dir(comment)
        self._settings = (int(max_queue), int(flush_secs), filename_suffix)
        self._writer = self._EventFileWriter(self.log_dir, *self._settings)
        self._children = {}
        self._closed = False
        if purge_step is not None:  # TensorBoard drops events at or after this step from earlier files
            self._writer.add_event(self._event_pb2.Event(step=int(purge_step), wall_time=time.time(),
                                                         session_log=self._event_pb2.SessionLog(status=1)))

    def get_logdir(self) -> str:
        return self.log_dir

    # -------------------------------------------------------------------------------- events
    def _check_open(self, what):
        if self._closed:
            raise RuntimeError(f"SummaryWriter.{what}: the writer for {self.log_dir} is closed")

    def _add(self, value, global_step, walltime, writer=None):
        event = self._event_pb2.Event(summary=self._summary_pb2.Summary(value=[value]),
                                      wall_time=time.time() if walltime is None else float(walltime))
        if global_step is not None:
            event.step = int(global_step)
        (writer or self._writer).add_event(event)

    def add_scalar(self, tag: str, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False):
        """One number under ``tag`` (a Python number, NumPy scalar or one-element tensor)."""
        self._check_open("add_scalar")
        self._add(self._summary_pb2.Summary.Value(tag=tag, simple_value=_scalar(scalar_value, tag)),
                  global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict, global_step=None, walltime=None):
        """Several numbers on one chart: each goes to the run ``<log_dir>/<main_tag>_<key>`` under the tag
        ``main_tag``, as PyTorch does."""
        self._check_open("add_scalars")
        for key, value in tag_scalar_dict.items():
            folder = os.path.join(self.log_dir, f"{main_tag}_{key}".replace("/", "_"))
            writer = self._children.get(folder)
            if writer is None:
                writer = self._children[folder] = self._EventFileWriter(folder, *self._settings)
            self._add(self._summary_pb2.Summary.Value(tag=main_tag, simple_value=_scalar(value, key)),
                      global_step, walltime, writer)

    def add_histogram(self, tag: str, values, global_step=None, bins="tensorflow", walltime=None,
                      max_bins=None):
        """The distribution of ``values`` (``bins``: "tensorflow" (exponential buckets, TensorBoard's own
        layout), a NumPy bin rule such as "auto", an int, or bin edges)."""
        self._check_open("add_histogram")
        arr = _array(values, f"add_histogram({tag!r})").astype(np.float64).reshape(-1)
        if arr.size == 0:
            raise ValueError(f"add_histogram({tag!r}): the values are empty")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"add_histogram({tag!r}): the values contain NaN or infinity")
        if isinstance(bins, str) and bins == "tensorflow":
            edges = _tf_edges(arr)
        else:
            edges = np.histogram_bin_edges(arr, bins=bins)
        counts, edges = np.histogram(arr, bins=edges)
        if max_bins is not None and len(counts) > max_bins:
            step = -(-len(counts) // int(max_bins))
            counts = np.add.reduceat(counts, np.arange(0, len(counts), step))
            edges = np.concatenate([edges[:-1:step], edges[-1:]])
        histo = self._summary_pb2.HistogramProto(
            min=float(arr.min()), max=float(arr.max()), num=float(arr.size), sum=float(arr.sum()),
            sum_squares=float(np.dot(arr, arr)), bucket_limit=[float(e) for e in edges[1:]],
            bucket=[float(c) for c in counts])
        self._add(self._summary_pb2.Summary.Value(tag=tag, histo=histo), global_step, walltime)

    def add_image(self, tag: str, img_tensor, global_step=None, walltime=None, dataformats="CHW"):
        """One image: floats in [0, 1] or uint8 in [0, 255], laid out as ``dataformats`` ("CHW", "HWC", "HW")."""
        self._check_open("add_image")
        img = _hwc(img_tensor, dataformats, tag)
        h, w, c = img.shape
        image = self._summary_pb2.Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=_png(img))
        self._add(self._summary_pb2.Summary.Value(tag=tag, image=image), global_step, walltime)

    def add_images(self, tag: str, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        """A batch of images tiled into one grid image (``dataformats`` "NCHW" or "NHWC")."""
        arr = _array(img_tensor, f"add_images({tag!r})")
        if dataformats.upper() not in ("NCHW", "NHWC") or arr.ndim != 4:
            raise ValueError(f"add_images({tag!r}): expected a 4-d batch laid out NCHW or NHWC, got shape "
                             f"{arr.shape} as {dataformats!r}")
        if dataformats.upper() == "NHWC":
            arr = arr.transpose(0, 3, 1, 2)
        n, c, h, w = arr.shape
        cols = int(np.ceil(np.sqrt(n)))
        rows = -(-n // cols)
        grid = np.zeros((c, rows * h, cols * w), dtype=arr.dtype)
        for i in range(n):
            r, q = divmod(i, cols)
            grid[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = arr[i]
        self.add_image(tag, grid, global_step, walltime, dataformats="CHW")

    def add_text(self, tag: str, text_string: str, global_step=None, walltime=None):
        """Text (Markdown) shown in TensorBoard's text tab."""
        self._check_open("add_text")
        meta = self._summary_pb2.SummaryMetadata(
            plugin_data=self._summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        tensor = self._tensor_pb2.TensorProto(
            dtype=7, string_val=[str(text_string).encode("utf-8")],  # 7: DT_STRING
            tensor_shape=self._shape_pb2.TensorShapeProto(dim=[self._shape_pb2.TensorShapeProto.Dim(size=1)]))
        self._add(self._summary_pb2.Summary.Value(tag=f"{tag}/text_summary", metadata=meta, tensor=tensor),
                  global_step, walltime)

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        """The graph of one forward pass of ``model`` on ``input_to_model`` (a tensor or a tuple), as
        autograd records it: one node per op, grouped by the layer that ran it, parameters as inputs."""
        self._check_open("add_graph")
        if input_to_model is None:
            raise ValueError("add_graph: give an example input (input_to_model), as PyTorch requires")
        args = input_to_model if isinstance(input_to_model, (tuple, list)) else (input_to_model,)
        inputs = []
        for a in args:
            t = Tensor(_array(a, "add_graph").copy())
            if backend.is_floating(t.array.dtype):
                t.requires_grad_(True)
            inputs.append(t)
        names = {id(p.array): k for k, p in model.state_dict(keep_vars=True).items()}
        was = model.training
        model.eval()
        try:
            with enable_grad():
                outs, nodes = capture(model, model, tuple(inputs), keep_calls)
        finally:
            model.train(was)
        graph = self._graph_pb2.GraphDef()
        value = {}
        for i, t in enumerate(inputs):
            value[("leaf", id(t))] = f"input/input_{i}"
            graph.node.add(name=f"input/input_{i}", op="IO Node")
        for name in sorted(set(names.values())):
            graph.node.add(name=name.replace(".", "/"), op="Parameter")

        def source(t):
            k = ("out", id(t._ctx), t._out_index) if t._ctx is not None else ("leaf", id(t))
            if k in value:
                return value[k]
            if id(t.array) in names:
                return names[id(t.array)].replace(".", "/")
            return None

        for n, node in enumerate(nodes):
            layer = node.layer[0].replace(".", "/")
            name = f"{layer}/{node.name}_{n}"
            ins = [s for s in (source(t) for t in (node.ctx.inputs or ()) if t is not None) if s]
            graph.node.add(name=name, op=node.name, input=ins)
            for i in range(node.ctx.n_outputs):
                value[("out", id(node.ctx), i)] = name
        for i, t in enumerate(outs):
            src = source(t)
            graph.node.add(name=f"output/output_{i}", op="IO Node", input=[src] if src else [])
        self._writer.add_event(self._event_pb2.Event(graph_def=graph.SerializeToString(), wall_time=time.time()))

    # -------------------------------------------------------------------------------- lifecycle
    def flush(self):
        """Write every queued event to disk now."""
        for w in (self._writer, *self._children.values()):
            w.flush()

    def close(self):
        """Flush and close the event files (the writer takes no more events)."""
        if self._closed:
            return
        for w in (self._writer, *self._children.values()):
            w.close()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tf_edges(arr):
    """TensorBoard's default bucket layout: edges growing by 10% from 1e-12, mirrored for negatives,
    trimmed to the range of the values."""
    pos = [1e-12]
    while pos[-1] < 1e20:
        pos.append(pos[-1] * 1.1)
    pos = np.asarray(pos)
    edges = np.concatenate([-pos[::-1], [0.0], pos])
    lo = np.searchsorted(edges, arr.min(), side="right") - 1
    hi = np.searchsorted(edges, arr.max(), side="left") + 1
    return edges[max(lo, 0):min(hi, len(edges) - 1) + 1]


class TensorBoard(Callback):
    """Logs a ``Trainer.fit`` for TensorBoard, as Keras' callback of the same name.

    Every epoch: the epoch logs (losses, metrics, their ``val_`` versions, ``lr``) as scalars, the
    training ones under ``<name>/train`` in ``log_dir/train`` and the validation ones in
    ``log_dir/validation`` (so TensorBoard draws them on one chart). With ``histogram_freq=N`` every
    N epochs: histograms of each parameter (``<key>``) and of its gradient (``<key>/grad``, from the
    epoch's first optimizer step). ``update_freq="batch"`` (or an int N: every N batches) also logs
    the running batch logs against the global step. ``write_graph=True`` writes the model's graph
    once, traced on zeros of the training samples' shape after the first batch. ``images`` (a batch
    of model inputs, e.g. latent vectors of a GAN or digits for an autoencoder): every epoch the
    model's outputs on them, when they are images (N, C, H, W), are logged as one grid (``outputs``),
    each image scaled to [0, 1] by its own range; image-shaped inputs are logged once (``inputs``).
    """

    rank_zero_only = True  # it writes event files: under mpiexec, rank 0 alone

    def __init__(self, log_dir="logs", histogram_freq: int = 0, write_graph: bool = False,
                 update_freq="epoch", images=None):
        if not (update_freq in ("epoch", "batch") or (isinstance(update_freq, int) and update_freq > 0)):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive int, "
                             f"got {update_freq!r}")
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be an int >= 0, got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = bool(write_graph)
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._train = self._val = None
        self._grads_logged = -1
        self._graph_written = False
        self.images = None if images is None else _array(images, "TensorBoard(images=...)")
        self._inputs_logged = False

    def _writers(self):
        if self._train is None:
            self._train = SummaryWriter(os.path.join(self.log_dir, "train"))
            self._val = SummaryWriter(os.path.join(self.log_dir, "validation"))
        return self._train, self._val

    def on_train_begin(self, logs=None):
        self._writers()
        self._grads_logged = -1

    def _histogram_epoch(self, epoch):
        return self.histogram_freq and epoch % self.histogram_freq == 0

    def _write_graph(self):
        shape = self.trainer.state.sample_shape
        if shape is None:
            raise ValueError("TensorBoard(write_graph=True): the training inputs have no shape to trace the "
                             "model with; call SummaryWriter.add_graph(model, example) instead")
        self._graph_written = True
        try:  # float inputs first; models that start with an embedding take token ids
            self._writers()[0].add_graph(self.model, np.zeros((1, *shape), np.float32))
        except (TypeError, ValueError, IndexError):
            self._writers()[0].add_graph(self.model, np.zeros((1, *shape), np.int64))

    def on_before_optimizer_step(self, optimizer):
        epoch = self.trainer.state.epoch
        if not self._histogram_epoch(epoch) or self._grads_logged == epoch:
            return
        self._grads_logged = epoch
        train, _ = self._writers()
        for key, p in self.model.named_parameters():
            if p.grad is not None:
                train.add_histogram(f"{key}/grad", p.grad, epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self.write_graph and not self._graph_written:
            self._write_graph()
        if self.update_freq == "epoch" or not logs:
            return
        step = self.trainer.state.global_step
        if step % self.update_freq:
            return
        train, _ = self._writers()
        for k, v in logs.items():
            if _is_number(v):
                train.add_scalar(f"batch_{k}", v, step)

    def on_epoch_end(self, epoch, logs=None):
        train, val = self._writers()
        for k, v in (logs or {}).items():
            if not _is_number(v):
                continue
            if k.startswith("val_"):
                val.add_scalar(f"epoch_{k[4:]}", v, epoch)
            else:
                train.add_scalar(f"epoch_{k}", v, epoch)
        if self._histogram_epoch(epoch):
            for key, p in self.model.named_parameters():
                train.add_histogram(key, p, epoch)
        if self.images is not None:
            self._log_images(train, epoch)
        train.flush()
        val.flush()

    def _log_images(self, writer, epoch):
        if not self._inputs_logged and _is_image_batch(self.images):
            writer.add_images("inputs", _unit_range(self.images), epoch)
            self._inputs_logged = True
        was = self.model.training
        self.model.eval()
        try:
            with no_grad():
                out = self.model(Tensor(self.images))
        finally:
            self.model.train(was)
        out = out[0] if isinstance(out, (tuple, list)) else out
        arr = _array(out, "TensorBoard images")
        if _is_image_batch(arr):
            writer.add_images("outputs", _unit_range(arr), epoch)

    def on_train_end(self, logs=None):
        if self._train is not None:
            self._train.close()
            self._val.close()
            self._train = self._val = None


def _is_image_batch(arr):
    return arr.ndim == 4 and arr.shape[1] in (1, 3, 4) and arr.dtype.kind in "fiu"


def _unit_range(arr):
    """Each image of a batch scaled to [0, 1] by its own minimum and maximum (outputs of a tanh or a
    linear layer are not in [0, 1])."""
    arr = arr.astype(np.float32)
    lo = arr.min(axis=(1, 2, 3), keepdims=True)
    span = arr.max(axis=(1, 2, 3), keepdims=True) - lo
    return (arr - lo) / np.where(span > 0, span, 1)


def _is_number(v):
    if isinstance(v, Tensor):
        return v.array.size == 1
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
