"""What a recipe is: data, model, training settings and what it reports, in one small class.

``deepwise train NAME`` looks the recipe up in the registry (``deepwise.recipes``), builds its data and
model, trains it with ``Trainer.fit`` and writes the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepwise import backend, optim
from deepwise.tensor import Tensor
from deepwise.train import Trainer


@dataclass
class Splits:
    train: tuple
    val: tuple
    test: tuple


class Recipe:
    """Subclass and fill in; see ``digits.py`` for two complete examples."""

    name = ""
    task = ""
    data_desc = ""
    model_desc = ""
    expected = ""
    typical_time = ""
    defaults = {"epochs": 10, "batch_size": 64, "lr": 1e-3, "seed": 0}
    loss = "cross_entropy"
    metrics = ("accuracy",)
    monitor = "val_accuracy"
    class_names = None
    # what ``deepwise predict RUN_DIR INPUT`` takes as INPUT, in words for its error messages
    predict_input = ""
    # a recipe whose predict reads no input and writes a file names its default here (e.g. "samples.png"):
    # ``deepwise predict`` then passes ``output=PATH`` (a new file in the run folder, or --output)
    predict_writes = None

    def data(self, config) -> Splits:
        raise NotImplementedError

    def model(self, config):
        raise NotImplementedError

    def optimizer(self, model, config):
        return optim.Adam(model.parameters(), lr=config["lr"])

    def scheduler(self, optimizer, config):
        return None

    def trainer(self, model, config):
        """The Trainer that fits this recipe (GANs and autoencoders bring their own)."""
        opt = self.optimizer(model, config)
        return Trainer(model, optimizer=opt, loss=self.loss, metrics=list(self.metrics),
                       scheduler=self.scheduler(opt, config), device=config.get("device", "cpu"))

    def callbacks(self, config, run_dir) -> list:
        """Extra callbacks for this recipe's training (sample grids, ...)."""
        return []

    def final_metrics(self, trainer, splits, config) -> dict:
        """Test metrics (plain floats) plus what the report shows for this task."""
        x, y = splits.test
        out = {f"test_{k}": float(v) for k, v in trainer.evaluate(x, y, batch_size=256).items()}
        return out

    def predict(self, trainer, path, config) -> str:
        """The answer for one INPUT, as text (with ``predict_writes`` set: ``predict(trainer, None,
        config, output=PATH)`` writes the file and says what it wrote)."""
        raise NotImplementedError(f"recipe {self.name} has no predict")


def classification_extras(trainer, splits, class_names, n_samples=16) -> dict:
    """Confusion matrix and a few test samples (wrong ones first) for the report."""
    x, y = splits.test
    logits = trainer.predict(x, batch_size=256)
    pred = logits.argmax(axis=1)
    k = logits.shape[1]
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    wrong = np.flatnonzero(pred != y)
    right = np.flatnonzero(pred == y)
    pick = np.concatenate([wrong[: n_samples // 2], right[: n_samples - min(len(wrong), n_samples // 2)]])
    samples = [{"image": np.asarray(x[i]).reshape(-1, *x.shape[-2:]).tolist() if x.ndim >= 3
                else np.asarray(x[i]).reshape(int(np.sqrt(x.shape[1])), -1).tolist(),
                "label": int(y[i]), "pred": int(pred[i])} for i in pick]
    return {"confusion_matrix": cm.tolist(), "class_names": class_names, "samples": samples}


def state_at_length(output, lengths):
    """A batch_first recurrent layer's output (N, T, H) at each right-padded sequence's last real step,
    ``lengths - 1`` (a (N,) int tensor) -> (N, H).

    That is the final state a run with ``lengths=`` ends in (padding comes after the real steps, so it
    never reaches them), gradients included; written in tensor ops rather than with ``lengths=``, whose
    lengths leave the recorded graph as plain integers, so an ONNX export follows each input's own
    lengths instead of baking in the example's."""
    xp = backend.get_array_module(output.array)
    steps = Tensor._make(xp.arange(output.shape[1], dtype=xp.int64))
    pick = (steps == (lengths - 1).unsqueeze(1)).to(output.dtype)  # (N, T): one 1 per row
    return (output * pick.unsqueeze(2)).sum(dim=1)
