"""Sequences cut into training examples: sliding windows for forecasting, next-token windows for
language models, and padding of variable-length sequences.

    x, y = sliding_windows(series, window=24)              # x (N, 24, 1), y (N, 1): the next value
    x, y = next_token_windows(ids, seq_len=64)             # x (N, 64), y (N, 64): each shifted by one
    padded, lengths = pad_sequences([[1, 2, 3], [4]])      # for RNN(..., lengths=lengths)
    ds = SequenceDataset(ids, 64, mode="next_token")       # the same windows, cut lazily per item

All of them are NumPy views and one copy: no Python loop over windows.
"""

from __future__ import annotations

import numpy as np

from deepwise.data.dataset import Dataset
from deepwise.text._arrays import host_array

__all__ = ["SequenceDataset", "next_token_windows", "pad_sequences", "sliding_windows"]


def _check_int(op, name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{op}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _series(op, series):
    arr = host_array(series)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{op}: expected a series of shape (T,) or (T, features), got {arr.shape}")
    return arr


def _count(op, T, span, stride):
    if T < span:
        raise ValueError(f"{op}: a series of {T} steps is shorter than one window + target ({span} steps)")
    return (T - span) // stride + 1


def sliding_windows(series, window: int, horizon: int = 1, stride: int = 1, dtype=np.float32):
    """Forecasting examples from one series: ``x[i] = series[s : s + window]`` and ``y[i]`` the
    ``horizon`` values after it, for s = 0, stride, 2*stride, ...

    A 1-D series (T,) gives x (N, window, 1) and y (N, horizon); a 2-D series (T, F) gives
    x (N, window, F) and y (N, horizon, F). ``dtype=None`` keeps the series' dtype."""
    op = "sliding_windows"
    arr = _series(op, series)
    window = _check_int(op, "window", window, 1)
    horizon = _check_int(op, "horizon", horizon, 1)
    stride = _check_int(op, "stride", stride, 1)
    n = _count(op, arr.shape[0], window + horizon, stride)
    starts = np.arange(n) * stride
    view = np.lib.stride_tricks.sliding_window_view(arr, window + horizon, axis=0)  # (T-w-h+1, [F,] w+h)
    view = np.moveaxis(view[starts], -1, 1)  # (N, w+h[, F])
    x, y = view[:, :window], view[:, window:]
    if arr.ndim == 1:
        x = x[..., None]
    if dtype is not None:
        return x.astype(dtype), y.astype(dtype)
    return x.copy(), y.copy()


def next_token_windows(ids, seq_len: int, stride: int | None = None):
    """Language-model examples: ``x[i] = ids[s : s + seq_len]``, ``y[i] = ids[s + 1 : s + seq_len + 1]``
    (each target the token after its input), s = 0, stride, ...; ``stride`` defaults to ``seq_len``
    (windows that do not overlap). Both int64 (N, seq_len)."""
    op = "next_token_windows"
    arr = host_array(ids)
    if arr.ndim != 1:
        raise ValueError(f"{op}: expected a 1-D sequence of token ids, got shape {arr.shape}")
    seq_len = _check_int(op, "seq_len", seq_len, 1)
    stride = seq_len if stride is None else _check_int(op, "stride", stride, 1)
    n = _count(op, arr.shape[0], seq_len + 1, stride)
    view = np.lib.stride_tricks.sliding_window_view(arr, seq_len + 1)[np.arange(n) * stride]
    return view[:, :-1].astype(np.int64), view[:, 1:].astype(np.int64)


def pad_sequences(sequences, padding_value=0, max_len: int | None = None, dtype=None):
    """A list of sequences (each (L_i,) or (L_i, F)) -> ``(padded, lengths)``: padded (B, T[, F]) with
    T = max_len or the longest length (longer sequences are cut to it), lengths int64 (B,), ready for
    ``nn.LSTM(..., batch_first=True)(padded, lengths=lengths)``."""
    seqs = [np.asarray(s) for s in sequences]
    if not seqs:
        raise ValueError("pad_sequences: got no sequences")
    tail = seqs[0].shape[1:]
    for i, s in enumerate(seqs):
        if s.ndim == 0 or s.shape[1:] != tail:
            raise ValueError(f"pad_sequences: sequence {i} has shape {s.shape}; every sequence must be (L,"
                             f"{''.join(', ' + str(d) for d in tail)})")
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    T = int(lengths.max()) if max_len is None else _check_int("pad_sequences", "max_len", max_len, 0)
    lengths = np.minimum(lengths, T)
    out = np.full((len(seqs), T) + tail, padding_value, dtype=dtype or np.result_type(*seqs))
    for i, (s, n) in enumerate(zip(seqs, lengths)):  # one copy per sequence
        out[i, :n] = s[:n]
    return out, lengths


class SequenceDataset(Dataset):
    """Windows of a long sequence, cut when indexed (memory stays one copy of the sequence).

    ``mode="next_token"``: item i is (ids[s : s+seq_len], ids[s+1 : s+seq_len+1]) as int64, with
    s = i * stride (stride defaults to seq_len). ``mode="forecast"``: item i is (x (seq_len, F),
    y (horizon[, F])) as ``sliding_windows`` makes them (stride defaults to 1).
    """

    def __init__(self, data, seq_len: int, mode: str = "next_token", horizon: int = 1, stride: int | None = None,
                 dtype=np.float32):
        if mode not in ("next_token", "forecast"):
            raise ValueError(f"SequenceDataset: mode must be 'next_token' or 'forecast', got {mode!r}")
        self.mode = mode
        self.seq_len = _check_int("SequenceDataset", "seq_len", seq_len, 1)
        self.horizon = 1 if mode == "next_token" else _check_int("SequenceDataset", "horizon", horizon, 1)
        default = seq_len if mode == "next_token" else 1
        self.stride = default if stride is None else _check_int("SequenceDataset", "stride", stride, 1)
        if mode == "next_token":
            self.data = host_array(data).astype(np.int64)
            if self.data.ndim != 1:
                raise ValueError(f"SequenceDataset: next_token mode needs 1-D token ids, got shape {self.data.shape}")
        else:
            self.data = _series("SequenceDataset", data).astype(dtype)
        self._n = _count("SequenceDataset", self.data.shape[0], self.seq_len + self.horizon, self.stride)

    def __len__(self) -> int:
        return self._n

    def _starts(self, indices):
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"SequenceDataset: index out of range for {self._n} windows")
        return (idx % self._n) * self.stride

    def __getitems__(self, indices):
        starts = self._starts(indices)
        span = np.arange(self.seq_len + self.horizon)
        block = self.data[starts[:, None] + span[None, :]]  # (n, seq_len + horizon[, F])
        if self.mode == "next_token":
            return block[:, :-1], block[:, 1:]
        x, y = block[:, :self.seq_len], block[:, self.seq_len:]
        return (x[..., None] if self.data.ndim == 1 else x), y

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            x, y = self.__getitems__([index])
            return x[0], y[0]
        raise TypeError(f"SequenceDataset: index must be an int, got {type(index).__name__}")
