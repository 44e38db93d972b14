"""The registry of ready-made recipes: ``deepwise recipes`` lists them, ``deepwise train NAME`` runs one."""

from __future__ import annotations

from deepwise.recipes.base import Recipe, Splits
from deepwise.recipes.digits import DigitsCNN, DigitsMLP
from deepwise.recipes.generative import AutoencoderDigits, DenoisingDigits, GanDigits, VaeDigits
from deepwise.recipes.gpt import CharsGPT
from deepwise.recipes.sentiment import Sentiment
from deepwise.recipes.sequences import CO2LSTM, CharsLSTM, SequenceGRU
from deepwise.recipes.translation import TranslateDates

DEFAULT = "digits-cnn"
_REGISTRY = {r.name: r for r in (DigitsCNN, DigitsMLP, CO2LSTM, CharsLSTM, SequenceGRU, AutoencoderDigits,
                                 DenoisingDigits, VaeDigits, GanDigits, TranslateDates, CharsGPT, Sentiment)}


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Recipe:
    """An instance of the recipe called ``name``; KeyError lists the known ones."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; known recipes: {', '.join(names())}") from None


def register(cls):
    """Class decorator adding a recipe to the registry."""
    _REGISTRY[cls.name] = cls
    return cls


__all__ = ["DEFAULT", "Recipe", "Splits", "get", "names", "register"]
