"""The generative recipes, run the way ``deepwise train`` runs a recipe (data, model, the recipe's
trainer and callbacks, fit with checkpoints, final metrics), for one short epoch each."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import deepwise as dw
from deepwise.recipes.generative import AutoencoderDigits, DenoisingDigits, GanDigits, VaeDigits
from deepwise.train import ModelCheckpoint

RECIPES = (AutoencoderDigits, DenoisingDigits, GanDigits, VaeDigits)


def run_recipe(recipe, run_dir, epochs=1):
    config = dict(recipe.defaults, epochs=epochs, recipe=recipe.name, device="cpu")
    dw.manual_seed(config["seed"])
    splits = recipe.data(config)
    model = recipe.model(config)
    trainer = recipe.trainer(model, config)
    cbs = list(recipe.callbacks(config, run_dir))
    if recipe.monitor is not None:
        cbs.append(ModelCheckpoint(os.path.join(run_dir, "best.safetensors"), monitor=recipe.monitor,
                                   save_best_only=True))
    history = trainer.fit(*splits.train, epochs=config["epochs"], batch_size=config["batch_size"],
                          validation_data=splits.val, callbacks=cbs, verbose=0, checkpoint_dir=run_dir)
    return config, splits, trainer, history, recipe.final_metrics(trainer, splits, config)


def _check_grids(grids):
    assert grids
    for g in grids:
        imgs = np.asarray(g["images"])
        assert imgs.ndim == 3 and imgs.shape[1:] == (8, 8) and g["title"]
        assert 0 <= imgs.min() and imgs.max() <= 1
        assert not g["captions"] or len(g["captions"]) == len(imgs)


@pytest.mark.parametrize("cls", RECIPES, ids=lambda c: c.name)
def test_recipe_runs_and_reports(cls, tmp_path):
    recipe = cls()
    assert recipe.name and recipe.typical_time and recipe.expected
    config, splits, trainer, history, metrics = run_recipe(recipe, str(tmp_path), epochs=1)
    json.dumps(metrics)  # metrics.json must be plain JSON
    assert np.isfinite(history["loss"]).all()
    _check_grids(metrics["image_grids"])
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
    assert numbers and all(np.isfinite(v) for v in numbers.values())
    if recipe.name == "gan-digits":
        assert {"sample_confident_share", "sample_distinct_classes", "sample_class_entropy_bits",
                "sample_pixel_mean", "real_pixel_mean"} <= set(metrics)
        assert len(os.listdir(tmp_path / "samples")) == 1
        out = recipe.predict(trainer, None, config, output=str(tmp_path / "gen.png"))
        assert os.path.exists(tmp_path / "gen.png") and "64" in out
        with pytest.raises(ValueError, match=".png"):
            recipe.predict(trainer, None, config, output=str(tmp_path / "gen.txt"))
        with pytest.raises(ValueError, match="reads no input"):  # an INPUT is never taken for the output file
            recipe.predict(trainer, str(tmp_path / "gen.png"), config)
    else:
        assert {"knn5_accuracy_embedding", "knn5_accuracy_pixels"} <= set(metrics)
        x = splits.test[0][:1]
        np.save(tmp_path / "one.npy", x[0, 0])
        text = recipe.predict(trainer, str(tmp_path / "one.npy"), config)
        assert "latent code" in text and "reconstruction MSE" in text
    if recipe.name == "denoising-digits":
        assert metrics["test_psnr_denoised_db"] > metrics["test_psnr_noisy_db"] - 10  # 1 epoch: finite, sane
    if recipe.name == "vae-digits":
        assert metrics["test_elbo_nats"] < 0
        assert metrics["test_elbo_nats"] == pytest.approx(
            -(metrics["test_reconstruction_nll_nats"] + metrics["test_kl_nats"]))


def test_registered_with_the_command_line():
    from deepwise import recipes

    missing = [c.name for c in RECIPES if c.name not in recipes.names()]
    if missing:
        pytest.skip(f"not registered in deepwise.recipes yet: {missing}")
    for cls in RECIPES:
        assert isinstance(recipes.get(cls.name), cls)
