"""``Parameter``: a leaf tensor that a ``Module`` registers as learnable when assigned to it."""

from __future__ import annotations

from deepwise.tensor import Tensor, as_array


class Parameter(Tensor):
    """A tensor that is a module's learnable state: always a leaf, ``requires_grad=True`` by default.

    ``Parameter(tensor)`` shares the tensor's array (no copy) and keeps its dtype; array-likes follow
    the dtype policy (floating data becomes float32).
    """

    # no __slots__: a Parameter may carry extra attributes (a __dict__), Tensor's slots stay as they are

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            arr = as_array([], dtype="float32")
        elif isinstance(data, Tensor):
            arr = data.array
        else:
            arr = as_array(data)
        self.array = arr
        self.grad = None
        self._ctx = None
        self._out_index = 0
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(Tensor._make(self.array.copy()), requires_grad=self.requires_grad)  # same dtype
        if self.grad is not None:
            out.grad = Tensor._make(self.grad.array.copy())
        memo[id(self)] = out
        return out


__all__ = ["Parameter"]
