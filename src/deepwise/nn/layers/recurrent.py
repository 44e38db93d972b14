"""Recurrent layers with PyTorch's interface: ``RNN``, ``LSTM``, ``GRU`` and the cells ``RNNCell``,
``LSTMCell``, ``GRUCell``.

Parameter names, shapes and gate order are PyTorch's (``weight_ih_l{k}{_reverse}`` is
(gates*hidden, input), LSTM gates stacked i, f, g, o, GRU r, z, n), so a ``state_dict`` moves between
the two frameworks unchanged. Every layer and direction runs as one fused op over the whole sequence
(``deepwise.ops.recurrent``).

``forward(input, hx=None, lengths=None)``: ``lengths`` (one int per batch item) plays the part of
PyTorch's packed sequences: steps past a sequence's length are padding, its state stops there and
its outputs are zero.
"""

from __future__ import annotations

import math
import numbers
import warnings

from deepwise import backend
from deepwise.creation import empty
from deepwise.nn import init
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter
from deepwise.ops.dropout import dropout as _dropout
from deepwise.ops.recurrent import gru_layer, lengths_array, lstm_layer, rnn_layer
from deepwise.ops.shape import cat, stack
from deepwise.tensor import Tensor

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_size(owner, name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _shape(t):
    return tuple(t.shape)


class RNNBase(Module):
    """Shared machinery of ``RNN``, ``LSTM`` and ``GRU``; ``mode`` is one of RNN_TANH, RNN_RELU, LSTM, GRU."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        if mode not in _GATES:
            raise ValueError(f"RNNBase: unknown mode {mode!r}; expected one of {', '.join(_GATES)}")
        if proj_size:
            if mode == "LSTM":
                raise NotImplementedError(
                    f"LSTM: proj_size={proj_size} (LSTM with projections) is not supported; use proj_size=0 and "
                    "add an nn.Linear on the outputs if you need a smaller hidden state")
            raise ValueError(f"{name}: proj_size is only an LSTM argument (and is not supported), got {proj_size}")
        self.mode = mode
        self.input_size = _check_size(name, "input_size", input_size, 0)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size)
        self.num_layers = _check_size(name, "num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between recurrent layers, so it does nothing with "
                          "num_layers=1", stacklevel=3)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = 0
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        gates = _GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        self._weight_names = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * dirs
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                setattr(self, names[0], Parameter(empty(gates, layer_in, dtype=dtype)))
                setattr(self, names[1], Parameter(empty(gates, hidden_size, dtype=dtype)))
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    setattr(self, names[2], Parameter(empty(gates, dtype=dtype)))
                    setattr(self, names[3], Parameter(empty(gates, dtype=dtype)))
                self._weight_names.append(names)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch does."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self._parameters.values():
            if p is not None:
                init.uniform_(p, -k, k)

    @property
    def all_weights(self):
        """Per layer and direction: [weight_ih, weight_hh, (bias_ih, bias_hh)]."""
        return [[getattr(self, n) for n in names] for names in self._weight_names]

    # --------------------------------------------------------------------------------------- forward
    def _state_shape(self, batch):
        return (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)

    def _check_input(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"{self!r}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            layout = "(batch, seq, input_size)" if self.batch_first else "(seq, batch, input_size)"
            raise ValueError(f"{self!r}: expected input of 3 dims {layout} (or 2 dims (seq, input_size) unbatched), "
                             f"got shape {_shape(input)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{self!r}: input of shape {_shape(input)} has {input.shape[-1]} features in its last "
                             f"dimension, expected input_size={self.input_size}")

    def _check_state(self, state, what, batch, unbatched):
        if state is None:
            return None
        if not isinstance(state, Tensor):
            raise TypeError(f"{self!r}: {what} must be a Tensor, got {type(state).__name__}")
        want = self._state_shape(batch)
        if unbatched:
            want = (want[0], want[2])
        if _shape(state) != want:
            raise ValueError(f"{self!r}: {what} must have shape {want} (num_layers * num_directions, "
                             f"{'' if unbatched else 'batch, '}hidden_size), got {_shape(state)}")
        return state.unsqueeze(1) if unbatched else state

    def _run(self, input, states, lengths):
        """The layers and directions; ``states`` is a tuple of (L*D, B, H) tensors or Nones."""
        unbatched = input.ndim == 2
        bf = self.batch_first and not unbatched
        x = input.unsqueeze(1) if unbatched else input
        batch = x.shape[0] if bf else x.shape[1]
        steps = x.shape[1] if bf else x.shape[0]
        names = ("h_0", "c_0")
        states = tuple(self._check_state(s, names[i], batch, unbatched) for i, s in enumerate(states))
        lens = lengths_array(lengths, batch, steps, repr(self)) if lengths is not None else None
        if lens is not None and unbatched:
            raise ValueError(f"{self!r}: lengths apply to batched input; got unbatched input {_shape(input)}")
        dirs = 2 if self.bidirectional else 1
        finals = [[] for _ in states]
        all_weights = self.all_weights
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                idx = layer * dirs + d
                weights = all_weights[idx] if self.bias else all_weights[idx] + [None, None]
                init_states = [None if s is None else s[idx] for s in states]
                res = self._layer_op(x, weights, init_states, lens, reverse=d == 1, batch_first=bf)
                outs.append(res[0])
                for i, f in enumerate(res[1:]):
                    finals[i].append(f)
            x = outs[0] if dirs == 1 else cat(outs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, training=True)
        finals = [stack(f, dim=0) for f in finals]
        if unbatched:
            x = x.squeeze(1)
            finals = [f.squeeze(1) for f in finals]
        return x, finals

    def _layer_op(self, x, weights, init_states, lengths, reverse, batch_first):
        """One layer, one direction: the fused op of this mode."""
        kw = {"lengths": lengths, "reverse": reverse, "batch_first": batch_first}
        if self.mode == "LSTM":
            return lstm_layer(x, *weights, init_states[0], init_states[1], **kw)
        if self.mode == "GRU":
            return gru_layer(x, *weights, init_states[0], **kw)
        return rnn_layer(x, *weights, init_states[0], nonlinearity="relu" if self.mode == "RNN_RELU" else "tanh", **kw)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh (default) or relu.

    ``forward(input, hx=None, lengths=None) -> (output, h_n)``: input (seq, batch, input_size) (or
    (batch, seq, input_size) with ``batch_first``, or (seq, input_size) unbatched), hx
    (num_layers * num_directions, batch, hidden_size); output has num_directions * hidden_size features.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)

    def forward(self, input, hx=None, lengths=None):
        self._check_input(input)
        out, (h_n,) = self._run(input, (hx,), lengths)
        return out, h_n


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o; c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t).

    ``forward(input, hx=None, lengths=None) -> (output, (h_n, c_n))`` with hx = (h_0, c_0), each
    (num_layers * num_directions, batch, hidden_size). ``proj_size`` is not supported.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)

    def forward(self, input, hx=None, lengths=None):
        self._check_input(input)
        if hx is None:
            hx = (None, None)
        elif not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{self!r}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        out, (h_n, c_n) = self._run(input, tuple(hx), lengths)
        return out, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit (PyTorch's formula): r, z = sigmoid(...), n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn)), h_t = (1 - z) * n + z * h_{t-1}.

    ``forward(input, hx=None, lengths=None) -> (output, h_n)``, shapes as ``RNN``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)

    def forward(self, input, hx=None, lengths=None):
        self._check_input(input)
        out, (h_n,) = self._run(input, (hx,), lengths)
        return out, h_n


# -------------------------------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """One step of a recurrent layer: parameters weight_ih (gates*hidden, input), weight_hh
    (gates*hidden, hidden), bias_ih, bias_hh, drawn from U(-1/sqrt(hidden), 1/sqrt(hidden))."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = _check_size(name, "input_size", input_size, 0)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        rows = num_chunks * hidden_size
        self.weight_ih = Parameter(empty(rows, input_size, dtype=dtype))
        self.weight_hh = Parameter(empty(rows, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(rows, dtype=dtype))
            self.bias_hh = Parameter(empty(rows, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self._parameters.values():
            if p is not None:
                init.uniform_(p, -k, k)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nl = getattr(self, "nonlinearity", "tanh")
        if nl != "tanh":
            s += f", nonlinearity={nl}"
        return s

    def _step_input(self, input):
        """(batch, input_size) or unbatched (input_size,) -> a one-step (1, batch, input_size) sequence."""
        if not isinstance(input, Tensor):
            raise TypeError(f"{self!r}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{self!r}: expected input of shape (batch, input_size) or (input_size,), got "
                             f"{_shape(input)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{self!r}: input of shape {_shape(input)} has {input.shape[-1]} features, expected "
                             f"input_size={self.input_size}")
        unbatched = input.ndim == 1
        x = input.reshape(1, 1, -1) if unbatched else input.unsqueeze(0)
        return x, unbatched

    def _step_state(self, state, what, batch, unbatched):
        if state is None:
            return None
        if not isinstance(state, Tensor):
            raise TypeError(f"{self!r}: {what} must be a Tensor, got {type(state).__name__}")
        want = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        if _shape(state) != want:
            raise ValueError(f"{self!r}: {what} must have shape {want}, got {_shape(state)} (input batch {batch})")
        return state.unsqueeze(0) if unbatched else state

    def _weights(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh


def _unbatch(t, unbatched):
    return t.squeeze(0) if unbatched else t


class RNNCell(RNNCellBase):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh); ``forward(input, hx=None) -> h'``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, unbatched = self._step_input(input)
        h = self._step_state(hx, "hx", x.shape[1], unbatched)
        _, h_new = rnn_layer(x, *self._weights(), h, nonlinearity=self.nonlinearity)
        return _unbatch(h_new, unbatched)


class LSTMCell(RNNCellBase):
    """One LSTM step; ``forward(input, hx=None) -> (h', c')`` with hx = (h, c)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, unbatched = self._step_input(input)
        if hx is None:
            hx = (None, None)
        elif not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{self!r}: hx must be a tuple (h, c), got {type(hx).__name__}")
        h = self._step_state(hx[0], "h", x.shape[1], unbatched)
        c = self._step_state(hx[1], "c", x.shape[1], unbatched)
        _, h_new, c_new = lstm_layer(x, *self._weights(), h, c)
        return _unbatch(h_new, unbatched), _unbatch(c_new, unbatched)


class GRUCell(RNNCellBase):
    """One GRU step (PyTorch's formula); ``forward(input, hx=None) -> h'``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, unbatched = self._step_input(input)
        h = self._step_state(hx, "hx", x.shape[1], unbatched)
        _, h_new = gru_layer(x, *self._weights(), h)
        return _unbatch(h_new, unbatched)


__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell", "RNNCellBase"]
