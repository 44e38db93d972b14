"""``torch.nn.modules.rnn``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.recurrent``."""

from __future__ import annotations

from deepwise.nn.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
