"""The two digits recipes, run whole as ``deepwise train digits-cnn`` / ``digits-mlp`` runs them (their
own defaults, data split, model, trainer and callbacks), reach the results ``deepwise recipes`` states.
Both together take about 6 s on two cores, so they stay in the default run."""

from __future__ import annotations

import pytest

import deepwise as dw
from deepwise.recipes.digits import DigitsCNN, DigitsMLP


def _run(recipe, run_dir):
    config = dict(recipe.defaults, recipe=recipe.name, device="cpu")
    dw.manual_seed(config["seed"])
    splits = recipe.data(config)
    trainer = recipe.trainer(recipe.model(config), config)
    history = trainer.fit(*splits.train, epochs=config["epochs"], batch_size=config["batch_size"],
                          validation_data=splits.val, callbacks=list(recipe.callbacks(config, run_dir)),
                          verbose=0)
    return history, recipe.final_metrics(trainer, splits, config)


@pytest.mark.parametrize(("cls", "floor"), [(DigitsCNN, 0.98), (DigitsMLP, 0.965)], ids=["digits-cnn", "digits-mlp"])
def test_digits_recipe_reaches_its_stated_accuracy(cls, floor, tmp_path):
    recipe = cls()
    history, metrics = _run(recipe, str(tmp_path))
    # stated: digits-cnn ">= 98%" (98.6% measured, seed 0), digits-mlp "~97%" (97.5% measured)
    assert metrics["test_accuracy"] >= floor, (recipe.expected, metrics["test_accuracy"])
    assert history.history["val_loss"][-1] < 0.5 * history.history["val_loss"][0]
    assert sum(map(sum, metrics["confusion_matrix"])) == 360
