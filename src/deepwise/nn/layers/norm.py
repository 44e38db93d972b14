"""Normalisation layers: BatchNorm1d/2d, SyncBatchNorm, LayerNorm, GroupNorm, with PyTorch's
parameters, buffers, state-dict keys and reprs.

``SyncBatchNorm`` is batch normalisation whose statistics are those of the whole batch, spread over
every process of ``deepwise.distributed``. With data parallelism each rank sees only its share of a
batch, so plain BatchNorm would normalise by a different, noisier mean and variance on each rank
than one process would on the full batch. SyncBatchNorm sums over the ranks instead, weighting each
rank by its number of values: first the sums and the count (giving the mean), then the squared
deviations from that mean (giving the variance: the same two-pass formula one process uses). The
sums are ``distributed.nn.all_reduce``, which autograd differentiates (its backward sums the
gradients over the ranks), so the backward pass is exact without a formula of its own, double
backward included. In a world of one process, and in evaluation, it is BatchNorm exactly.
"""

from __future__ import annotations

from deepwise import backend, distributed
from deepwise.autograd.mode import no_grad
from deepwise.creation import ones, tensor, zeros
from deepwise.distributed import nn as dist_nn
from deepwise.nn import init
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter
from deepwise.ops.normalization import batch_norm, group_norm, layer_norm
from deepwise.ops.shape import cat


def _positive_int(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return value


def _affine_params(module, shape, affine, bias, dtype):
    """weight = 1 and bias = 0 of ``shape`` (or None when not affine / no bias)."""
    if affine:
        module.weight = Parameter(ones(*shape, dtype=dtype))
        if bias:
            module.bias = Parameter(zeros(*shape, dtype=dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d: per-channel statistics of (N, C, *).

    Training normalises with the batch's statistics and (with ``track_running_stats``) updates
    ``running_mean`` / ``running_var`` (unbiased) by ``momentum``, or by a cumulative average when
    ``momentum`` is None; evaluation uses the running statistics."""

    _ndims: tuple = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        name = type(self).__name__
        self.num_features = _positive_int(name, "num_features", num_features)
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        _affine_params(self, (num_features,), affine, bias, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=backend.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        if device is not None:
            self.to(device)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input(self, input):
        if input.ndim not in self._ndims:
            raise ValueError(
                f"{type(self).__name__}: expected {self._layout} input, got {input.ndim}D input of shape "
                f"{tuple(input.shape)}"
            )
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): input of shape {tuple(input.shape)} has "
                f"{input.shape[1]} channels in dim 1, expected num_features={self.num_features}"
            )

    def forward(self, input):
        self._check_input(input)
        tracking = self.training and self.track_running_stats
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        if use_batch and input.numel() // self.num_features <= 1:
            raise ValueError(
                f"{type(self).__name__}: expected more than 1 value per channel when training, got input "
                f"of shape {tuple(input.shape)}"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if tracking and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        pass_stats = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if pass_stats else None,
            self.running_var if pass_stats else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over N (and L), per channel."""

    _ndims = (2, 3)
    _layout = "2D (N, C) or 3D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H and W, per channel."""

    _ndims = (4,)
    _layout = "4D (N, C, H, W)"


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over all ranks' shares of the batch, of (N, C, *) inputs (PyTorch's
    arguments; ``process_group`` is accepted and means the world)."""

    _ndims = (2, 3, 4, 5)
    _layout = "(N, C) or (N, C, *) with up to 3 spatial dims"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input):
        if not self.training or distributed.world_size() == 1:
            return super().forward(input)
        self._check_input(input)
        c = self.num_features
        axes = (0, *range(2, input.ndim))
        shape = (1, c) + (1,) * (input.ndim - 2)
        local_count = input.numel() // c
        count = tensor([float(local_count)], dtype=input.dtype)
        totals = dist_nn.all_reduce(cat([input.sum(dim=axes), count]))
        n = totals[c]
        if float(n.item()) <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks, got "
                             f"input of shape {tuple(input.shape)} on this rank")
        mean = totals[:c] / n
        centered = input - mean.reshape(shape)
        var = dist_nn.all_reduce((centered * centered).sum(dim=axes)) / n
        out = centered * (var + self.eps).rsqrt().reshape(shape)
        if self.weight is not None:
            out = out * self.weight.reshape(shape)
        if self.bias is not None:
            out = out + self.bias.reshape(shape)
        if self.track_running_stats:
            self._update_running(mean, var, float(n.item()))
        return out

    def _update_running(self, mean, var, n):
        with no_grad():
            self.num_batches_tracked.add_(1)
            factor = self.momentum
            if factor is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
            unbiased = var * (n / (n - 1))
            self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype) * factor)
            self.running_var.mul_(1 - factor).add_(unbiased.detach().to(self.running_var.dtype) * factor)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm1d/2d replaced by a SyncBatchNorm holding the same parameters,
        buffers and settings (the module itself is returned when it is one)."""
        if isinstance(module, (BatchNorm1d, BatchNorm2d)) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats)
            if module.affine:
                sync.weight = module.weight
                sync.bias = module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(sync, name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            new = cls.convert_sync_batchnorm(child, process_group)
            if new is not child:
                setattr(module, name, new)
        return module


class LayerNorm(Module):
    """Normalises each sample over its trailing ``normalized_shape`` dimensions; elementwise weight
    (ones) and bias (zeros) of that shape."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        for n in shape:
            _positive_int("LayerNorm", "normalized_shape entries", n)
        if not shape:
            raise ValueError("LayerNorm: normalized_shape must name at least one dimension")
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        _affine_params(self, shape, elementwise_affine, bias, dtype)
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        k = len(self.normalized_shape)
        if input.ndim < k or tuple(input.shape[input.ndim - k:]) != self.normalized_shape:
            raise ValueError(
                f"{self!r}: input of shape {tuple(input.shape)} must end with normalized_shape "
                f"{self.normalized_shape}"
            )
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Splits the C channels of (N, C, *) into ``num_groups`` groups and normalises each group of each
    sample; per-channel weight (ones) and bias (zeros)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        _positive_int("GroupNorm", "num_groups", num_groups)
        _positive_int("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        _affine_params(self, (num_channels,), affine, bias, dtype)
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(
                f"{self!r}: expected input of shape (N, {self.num_channels}, *), got {tuple(input.shape)}"
            )
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "SyncBatchNorm"]
