"""A short training of every registered recipe with its model and batches on the device double
(``device="cuda"`` in the recipe's config, as ``deepwise train NAME --device cuda`` sets it), against
the same training on the CPU: the same losses, and the parameters stay on the device."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import backend, recipes

pytestmark = pytest.mark.device_double

N_TRAIN = 96


def _short(split, n):
    return tuple(a[:n] for a in split)


def _fit(name, device):
    recipe = recipes.get(name)
    config = dict(recipe.defaults, epochs=1, recipe=name, device=device)
    dw.manual_seed(config["seed"])
    splits = recipe.data(config)
    model = recipe.model(config)
    trainer = recipe.trainer(model, config)
    batch = min(int(config["batch_size"]), 32)
    history = trainer.fit(*_short(splits.train, N_TRAIN), epochs=1, batch_size=batch,
                          validation_data=_short(splits.val, 32), verbose=0)
    return model, history


@pytest.mark.parametrize("name", recipes.names())
def test_recipe_trains_on_the_device_as_on_the_cpu(name):
    model_gpu, on_gpu = _fit(name, "cuda")
    params = list(model_gpu.parameters())
    assert params and all(backend.is_device_array(p.array) for p in params), f"{name}: a parameter left the device"
    _, on_cpu = _fit(name, "cpu")
    keys = [k for k in on_cpu.history if "loss" in k]
    assert keys, f"{name}: no loss recorded"
    for k in keys:
        assert np.isfinite(on_gpu[k]).all(), f"{name}: {k} is not finite on the device"
        np.testing.assert_allclose(on_gpu[k], on_cpu[k], rtol=1e-3, atol=1e-4, err_msg=f"{name}: {k}")
