"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose1d``, ``ConvTranspose2d``.

Parameter layouts, defaults, initialisation and reprs are PyTorch's, so state dicts move between the
two: ``weight`` is (out_channels, in_channels/groups, *kernel) for a convolution and
(in_channels, out_channels/groups, *kernel) for a transposed one; both are drawn with
kaiming_uniform_(a=sqrt(5)) and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
A ``padding_mode`` other than ``"zeros"`` pads the input first (reflect, replicate or circular) and
then convolves without padding.
"""

from __future__ import annotations

import math

from deepwise import backend
from deepwise.creation import empty
from deepwise.nn import init
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter
from deepwise.ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d, same_padding
from deepwise.ops.shape import pad as pad_op

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, n, name, layer):
    if isinstance(value, (tuple, list)):
        if len(value) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{layer}: {name} must be an int or a tuple of {n} ints, got {value!r}")
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{layer}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return (value,) * n


class _ConvNd(Module):
    """Shared by every convolution layer: argument checks, parameters, init, repr and input checks."""

    _dims = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", output_padding=0, device=None, dtype=None):
        super().__init__()
        name, n = type(self).__name__, self._dims
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if arg == "groups" else 0):
                raise ValueError(f"{name}: {arg} must be a {'positive' if arg == 'groups' else 'non-negative'} "
                                 f"int, got {value!r}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size", name)
        self.stride = _ntuple(stride, n, "stride", name)
        self.dilation = _ntuple(dilation, n, "dilation", name)
        self.output_padding = _ntuple(output_padding, n, "output_padding", name)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(f"{name}: kernel_size, stride and dilation must be positive, got "
                             f"kernel_size={self.kernel_size}, stride={self.stride}, dilation={self.dilation}")
        if isinstance(padding, str):
            if self._transposed or padding not in ("same", "valid"):
                allowed = "an int or a tuple" if self._transposed else "an int, a tuple, 'same' or 'valid'"
                raise ValueError(f"{name}: padding must be {allowed}, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions "
                                 f"(stride={self.stride})")
            self.padding = padding
            per_dim = same_padding(self.kernel_size, self.dilation) if padding == "same" else ((0, 0),) * n
        else:
            self.padding = _ntuple(padding, n, "padding", name)
            if min(self.padding) < 0:
                raise ValueError(f"{name}: padding must be >= 0, got {self.padding}")
            per_dim = tuple((p, p) for p in self.padding)
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported for transposed convolutions")
        self.padding_mode = padding_mode
        # ops.shape.pad order: (left, right) pairs starting from the last dim
        self._reversed_padding_repeated_twice = tuple(v for pair in reversed(per_dim) for v in pair)
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(empty(*shape, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1.0 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        n = self._dims
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def _check_input(self, input):
        n = self._dims
        if input.ndim not in (n + 1, n + 2):
            spatial = ("L",) if n == 1 else ("H", "W")
            raise RuntimeError(
                f"{self!r}: expected a {n + 2}-D input (N, C, {', '.join(spatial)}) or an unbatched "
                f"{n + 1}-D one, got shape {tuple(input.shape)}")
        channels = input.shape[-n - 1]
        if channels != self.in_channels:
            want = ("N", self.in_channels) + (("L",) if n == 1 else ("H", "W"))
            raise RuntimeError(
                f"{self!r}: expected input of shape ({', '.join(str(v) for v in want)}) with "
                f"{self.in_channels} channels, got {tuple(input.shape)} ({channels} channels)")
        if self._transposed:
            return
        padded = [size + self._reversed_padding_repeated_twice[2 * (n - 1 - i)]
                  + self._reversed_padding_repeated_twice[2 * (n - 1 - i) + 1]
                  for i, size in enumerate(input.shape[-n:])]
        reach = [d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation)]
        if any(p < r for p, r in zip(padded, reach)):
            raise RuntimeError(
                f"{self!r}: kernel size {self.kernel_size} (dilated reach {tuple(reach)}) is larger than the "
                f"padded input {tuple(padded)} (input {tuple(input.shape)})")

    def _padded_input(self, input):
        """Input padded by padding_mode (non-zero modes); zero padding stays inside the conv op."""
        if self.padding_mode == "zeros":
            return input, self.padding
        return pad_op(input, self._reversed_padding_repeated_twice, mode=self.padding_mode), 0


class Conv2d(_ConvNd):
    """2-D convolution: (N, C_in, H, W) -> (N, C_out, H_out, W_out)."""

    _dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def forward(self, input):
        self._check_input(input)
        x, padding = self._padded_input(input)
        return conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution: (N, C_in, L) -> (N, C_out, L_out)."""

    _dims = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def forward(self, input):
        self._check_input(input)
        x, padding = self._padded_input(input)
        padding = padding if isinstance(padding, (str, int)) else padding[0]
        return conv1d(x, self.weight, self.bias, self.stride[0], padding, self.dilation[0], self.groups)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def _output_padding(self, input, output_size):
        """output_padding from a requested ``output_size`` (the last dims), as in PyTorch."""
        if output_size is None:
            return self.output_padding
        n = self._dims
        output_size = tuple(output_size)[-n:]
        if len(output_size) != n:
            raise ValueError(f"{self!r}: output_size must list the {n} spatial sizes, got {output_size!r}")
        result = []
        for i in range(n):
            smallest = ((input.shape[-n + i] - 1) * self.stride[i] - 2 * self.padding[i]
                        + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = int(output_size[i]) - smallest
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"{self!r}: requested output size {output_size} is not reachable from input "
                    f"{tuple(input.shape)}; dim {i} must be in [{smallest}, "
                    f"{smallest + max(self.stride[i], self.dilation[i]) - 1}]")
            result.append(extra)
        return tuple(result)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution (conv2d's input gradient; a learned upsampling), weight
    (C_in, C_out/groups, kh, kw)."""

    _dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def forward(self, input, output_size=None):
        self._check_input(input)
        out_pad = self._output_padding(input, output_size)
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, out_pad, self.groups,
                                self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution, weight (C_in, C_out/groups, k)."""

    _dims = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def forward(self, input, output_size=None):
        self._check_input(input)
        out_pad = self._output_padding(input, output_size)
        return conv_transpose1d(input, self.weight, self.bias, self.stride[0], self.padding[0], out_pad[0],
                                self.groups, self.dilation[0])


__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]
