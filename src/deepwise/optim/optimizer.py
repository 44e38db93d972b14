"""``Optimizer``: parameter groups, per-parameter state and PyTorch's state-dict layout.

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus every hyper-parameter, so
each group can have its own learning rate) and ``state`` (a dict keyed by parameter). ``step()``
walks the groups and calls ``_update_group(group)``, which a subclass implements by changing
``p.array`` in place. Gradients are read, never written: a gradient array may be shared by several
tensors, so anything derived from it (weight decay, ``maximize``) is a new array.

``state_dict()`` numbers the parameters in group order, as PyTorch does::

    {"state": {0: {"step": 3, "exp_avg": Tensor, ...}, ...},
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}, ...]}

Values are numbers, tuples of numbers, or Tensors (the live state tensors, as in PyTorch; copy them
if you keep the dict around while training goes on). ``load_state_dict`` copies what it loads.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from numbers import Real

import numpy as np

from deepwise import backend
from deepwise.autograd import enable_grad
from deepwise.tensor import Tensor


class _RequiredParameter:
    """Marks a hyper-parameter that has no default: every param group must give it."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _describe(obj) -> str:
    return type(obj).__name__


class Optimizer:
    """Base class of the optimizers: ``Optimizer(params, defaults)``.

    ``params`` is an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts (param groups:
    ``{"params": [...], "lr": 0.1}``); ``defaults`` gives every hyper-parameter a group leaves out.
    """

    def __init__(self, params, defaults):
        if not isinstance(defaults, dict):
            raise TypeError(
                f"{self._name}: defaults must be a dict of hyper-parameters, got {_describe(defaults)}"
            )
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        self._opt_called = False  # set by step(); lets a scheduler warn when it is stepped first
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: params must be an iterable of Tensors or dicts, got a single Tensor; "
                "pass [tensor] or model.parameters()"
            )
        if isinstance(params, dict):
            params = [params]
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: params is a set, whose order changes between runs; pass a list "
                "(the order numbers the parameters in state_dict())"
            )
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(
                f"{self._name}: params must be an iterable of Tensors or dicts, got {_describe(params)}"
            ) from None
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __init_subclass__(cls, **kwargs):
        # A subclass that writes its own step() still tells schedulers it was called.
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_marks_called", False):
            @functools.wraps(step)
            def step_and_mark(self, *args, **kw):
                out = step(self, *args, **kw)
                self._opt_called = True
                return out

            step_and_mark._marks_called = True
            cls.step = step_and_mark

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones come from defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}: a param group must be a dict, got {_describe(param_group)}")
        index = len(self.param_groups)
        if "params" not in param_group:
            raise ValueError(f"{self._name}: param group {index} has no 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: param group {index} gives its params as a set, whose order changes "
                "between runs; use a list"
            )
        else:
            params = list(params)
        names = []
        tensors = []
        for item in params:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                names.append(item[0])
                item = item[1]
            tensors.append(item)
        if names and len(names) != len(tensors):
            raise ValueError(
                f"{self._name}: param group {index} mixes named (name, tensor) pairs and bare tensors; "
                "give names for all parameters or for none"
            )
        for i, p in enumerate(tensors):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{self._name} can only optimize Tensors, but parameter {i} of param group {index} "
                    f"is a {_describe(p)}"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{self._name}: parameter {i} of param group {index} is not a leaf tensor (it was "
                    "computed by an op); optimize the tensors it was computed from, or detach() it"
                )
        seen = set()
        for i, p in enumerate(tensors):
            if id(p) in seen:
                raise ValueError(f"{self._name}: parameter {i} appears twice in param group {index}")
            seen.add(id(p))
        for g, group in enumerate(self.param_groups):
            if any(id(p) in seen for p in group["params"]):
                raise ValueError(
                    f"{self._name}: some parameters appear in more than one parameter group "
                    f"(groups {g} and {index})"
                )
            if bool(names) != ("param_names" in group):
                raise ValueError(
                    f"{self._name}: all param groups must be given with parameter names or all without; "
                    f"group {index} is {'with' if names else 'without'} names, group {g} is not"
                )
        param_group["params"] = tensors
        if names:
            param_group["param_names"] = names
        for key, default in self.defaults.items():
            if key not in param_group:
                if default is required:
                    raise ValueError(
                        f"{self._name}: param group {index} does not give '{key}', which has no default"
                    )
                param_group[key] = default
        self._check_group(param_group, f" (param group {index})")
        self.param_groups.append(param_group)

    def _check_group(self, group: dict, where: str) -> None:
        """Validate a group's hyper-parameters; subclasses raise ValueError naming the bad one."""

    def _check_number(self, group, key, where, low=0.0, high=None, high_inclusive=False):
        value = group[key]
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{self._name}: {key} must be a number, got {value!r}{where}")
        if value < low or (high is not None and (value > high or (value == high and not high_inclusive))):
            allowed = f">= {low}" if high is None else f"in [{low}, {high}{']' if high_inclusive else ')'}"
            raise ValueError(f"{self._name}: invalid {key} {value!r}: it must be {allowed}{where}")

    # ------------------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set ``.grad`` to None, or (``set_to_none=False``) to new zero arrays.
        Existing gradient arrays are never written (other tensors may share them)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    g = p.grad.array
                    p.grad = Tensor._make(backend.get_array_module(g).zeros_like(g))

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure`` (optional) recomputes the loss
        with gradients enabled and returns it; step returns that loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        self._opt_called = True
        return loss

    def _update_group(self, group: dict) -> None:
        raise NotImplementedError(f"{self._name} must implement step() or _update_group(group)")

    def _grads(self, group):
        """(parameter, gradient array) for the parameters of ``group`` that have a gradient."""
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            g = grad.array
            if g.shape != p.array.shape:
                raise RuntimeError(
                    f"{self._name}.step: a parameter of shape {p.shape} has a gradient of shape "
                    f"{tuple(g.shape)}"
                )
            yield p, g

    # ------------------------------------------------------------------------------ state dict
    def state_dict(self) -> dict:
        """``{"state": {index: {name: value}}, "param_groups": [{..., "params": [indices]}]}``."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            if "param_names" in packed:
                packed["param_names"] = list(packed["param_names"])
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = dict(self.state[p])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load what ``state_dict()`` returned (or the same layout with numpy arrays, string keys and
        lists for tuples, as read back from JSON/safetensors). State tensors are copied, cast to each
        parameter's dtype and moved to its device."""
        what = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{what}: expected a dict with 'state' and 'param_groups' (from state_dict())")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{what}: the state dict has {len(saved_groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        id_map = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{what}: parameter group {i} has {len(saved['params'])} parameters in the state dict "
                    f"but {len(group['params'])} in this optimizer"
                )
            for key, p in zip(saved["params"], group["params"]):
                id_map[int(key)] = p
        new_state = defaultdict(dict)
        for key, values in state_dict["state"].items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"{what}: state key {key!r} is not a parameter index") from None
            if index not in id_map:
                raise ValueError(
                    f"{what}: the state dict has state for parameter {index}, but its param groups "
                    f"number parameters {sorted(id_map)}"
                )
            p = id_map[index]
            new_state[p] = {name: self._cast_state(p, index, name, v) for name, v in values.items()}
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            new_group = {}
            for key, value in saved.items():
                if key == "params":
                    continue
                if isinstance(value, list) and isinstance(group.get(key), tuple):
                    value = tuple(value)
                new_group[key] = value
            for key in self.defaults:
                new_group.setdefault(key, group[key])
            if "param_names" in group:
                new_group.setdefault("param_names", group["param_names"])
            new_group["params"] = group["params"]
            self._check_group(new_group, f" (param group {i} of the loaded state dict)")
            new_groups.append(new_group)
        self.state = new_state
        self.param_groups = new_groups

    def _cast_state(self, p, index, name, value):
        if name == "step":
            if isinstance(value, Tensor) or backend.is_array(value) or isinstance(value, np.generic):
                value = float(value.item() if hasattr(value, "item") else value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return value
        if isinstance(value, Tensor):
            arr = value.array
        elif backend.is_array(value):
            arr = value
        else:
            return value
        if arr.ndim > 0 and tuple(arr.shape) != p.shape:
            raise ValueError(
                f"{self._name}.load_state_dict: state '{name}' of parameter {index} has shape "
                f"{tuple(arr.shape)}, but the parameter has shape {p.shape}"
            )
        src = arr
        if backend.is_floating(arr.dtype) and backend.is_floating(p.dtype) and arr.dtype != p.dtype:
            arr = arr.astype(p.dtype)
        arr = backend.to_device(arr, p.device)
        if arr is src:
            arr = arr.copy()
        return Tensor._make(arr)

    # ------------------------------------------------------------------------------ display
    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


# The helpers below write results through ``out=``: on a 0-d array a plain ``a * b`` returns a NumPy
# scalar, not an array, and a scalar cannot be updated in place or serve as ``out``.

def neg_or_same(g, maximize):
    """The gradient to descend along: ``-g`` (a new array) for ``maximize``, else ``g`` itself."""
    if not maximize:
        return g, False
    xp = backend.get_array_module(g)
    return xp.negative(g, out=xp.empty_like(g)), True


def with_weight_decay(g, p_data, weight_decay):
    """``g + weight_decay * p`` as a new array of p's dtype (L2 penalty folded into the gradient)."""
    xp = backend.get_array_module(p_data)
    out = xp.multiply(p_data, weight_decay, out=xp.empty_like(p_data))
    out += g
    return out


def product(xp, a, b, like):
    """``a * b`` as a new array shaped and typed like ``like`` (an array even when 0-d)."""
    return xp.multiply(a, b, out=xp.empty_like(like))


def lerp_(xp, start, end, weight, tmp):
    """``start += weight * (end - start)`` in place, in the same two-sided form PyTorch's lerp uses
    (``end - (end - start) * (1 - weight)`` for weight >= 0.5). ``tmp`` is scratch of start's shape."""
    xp.subtract(end, start, out=tmp)
    if weight < 0.5:
        tmp *= weight
        start += tmp
    else:
        tmp *= 1.0 - weight
        xp.subtract(end, tmp, out=start)
