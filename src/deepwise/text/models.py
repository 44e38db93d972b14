"""``LanguageModel``: embedding -> recurrent layers -> a linear head over the vocabulary.

``forward(ids)`` maps token ids (batch, seq) to logits (batch, vocab, seq) -- classes on dim 1, the
layout ``cross_entropy`` takes for sequences, so ``Trainer(model, loss="cross_entropy")`` trains it
on ``next_token_windows`` directly. ``step(ids, state)`` runs a few more tokens from a carried state
and returns the logits of the last one: what ``sample`` uses to generate text in O(length).
"""

from __future__ import annotations

from deepwise.nn.layers.dropout import Dropout
from deepwise.nn.layers.embedding import Embedding
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.recurrent import GRU, LSTM, RNN
from deepwise.nn.module import Module

__all__ = ["LanguageModel"]

_CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


class LanguageModel(Module):
    """Next-token model over a vocabulary of ``vocab_size`` tokens; ``cell`` is 'lstm', 'gru' or 'rnn'.
    ``dropout`` acts between recurrent layers and before the head."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256, num_layers: int = 1,
                 cell: str = "lstm", dropout: float = 0.0):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"LanguageModel: cell must be one of {', '.join(_CELLS)}, got {cell!r}")
        self.cell = cell
        self.embed = Embedding(vocab_size, embed_dim)
        self.rnn = _CELLS[cell](embed_dim, hidden_size, num_layers, batch_first=True,
                                dropout=dropout if num_layers > 1 else 0.0)
        self.drop = Dropout(dropout)
        self.head = Linear(hidden_size, vocab_size)

    def _logits(self, ids, state):
        if ids.ndim != 2:
            raise ValueError(f"LanguageModel: expected token ids of shape (batch, seq), got {tuple(ids.shape)}")
        out, state = self.rnn(self.embed(ids), state)
        return self.head(self.drop(out)), state  # (batch, seq, vocab)

    def forward(self, ids):
        logits, _ = self._logits(ids, None)
        return logits.permute(0, 2, 1)

    def step(self, ids, state=None):
        """Feed ``ids`` (batch, seq) after ``state`` (None: the start) -> (logits of the last position
        (batch, vocab), the new state)."""
        logits, state = self._logits(ids, state)
        return logits[:, -1], state
