"""``Embedding``: a learned lookup table from integer ids to vectors."""

from __future__ import annotations

from deepwise import backend
from deepwise.autograd import no_grad
from deepwise.creation import empty
from deepwise.nn import init
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter
from deepwise.ops.embedding import embedding
from deepwise.tensor import Tensor


class Embedding(Module):
    """``weight`` (num_embeddings, embedding_dim) drawn from N(0, 1); ``forward(ids)`` returns
    ``weight[ids]`` of shape ids.shape + (embedding_dim,). The ``padding_idx`` row starts at zero and
    gets no gradient, so it stays what it is."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        if max_norm is not None:
            raise NotImplementedError(
                "Embedding: max_norm (renormalising looked-up rows in place) is not supported; "
                "leave max_norm=None"
            )
        if sparse:
            raise NotImplementedError("Embedding: sparse gradients are not supported; use sparse=False")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} must be within num_embeddings ({num_embeddings})"
                )
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            shape = tuple(_weight.shape)
            if shape != (num_embeddings, embedding_dim):
                raise ValueError(
                    f"Embedding: _weight has shape {shape}, expected ({num_embeddings}, {embedding_dim})"
                )
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        self._zero_padding_row()

    def _zero_padding_row(self):
        if self.padding_idx is not None:
            with no_grad():
                self.weight.array[self.padding_idx] = 0

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx, None, self.norm_type, self.scale_grad_by_freq)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        return s

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False):
        """An Embedding holding ``embeddings`` (2-D), frozen unless ``freeze=False``."""
        if not isinstance(embeddings, Tensor):
            embeddings = Tensor(embeddings)
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {embeddings.shape}")
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)


__all__ = ["Embedding"]
