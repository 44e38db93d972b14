"""Small convolutional networks, ready to train: ``LeNet5``, ``SmallVGG`` and ``SmallResNet``.

Each is a plain ``Module`` built from deepwise layers (PyTorch-compatible state-dict keys), sized by
its arguments so the same class fits 1x8x8 digits, 1x28x28 MNIST-like images and 3x32x32 CIFAR-like
ones. ``BatchNorm2d`` comes from ``deepwise.nn.layers.norm``.
"""

from __future__ import annotations

from deepwise.nn.containers import Sequential
from deepwise.nn.layers.activation import ReLU, Tanh
from deepwise.nn.layers.conv import Conv2d
from deepwise.nn.layers.dropout import Dropout
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.norm import BatchNorm2d
from deepwise.nn.layers.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from deepwise.nn.layers.shape import Flatten
from deepwise.nn.module import Module


def _pair(size, name):
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return tuple(size)
    raise ValueError(f"{name}: input_size must be an int or an (H, W) pair, got {size!r}")


def _positive(name, **values):
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: {key} must be a positive int, got {v!r}")


class LeNet5(Module):
    """LeCun's LeNet-5, the modern way: conv5x5(6) -> pool -> conv5x5(16) -> pool -> 120 -> 84 -> classes.

    ``conv1`` pads by 2, so 28x28 inputs give the classic 16x5x5 = 400 features. For inputs under 20
    pixels (e.g. 8x8 digits) ``conv2`` pads by 2 as well, so the maps never shrink below one pixel.
    ``activation`` is "relu" (default) or "tanh"; ``pool`` is "max" (default) or "avg" (the original).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size=28, activation: str = "relu",
                 pool: str = "max"):
        super().__init__()
        _positive("LeNet5", in_channels=in_channels, num_classes=num_classes)
        h, w = self.input_size = _pair(input_size, "LeNet5")
        if min(h, w) < 4:
            raise ValueError(f"LeNet5: input_size {input_size!r} is too small (at least 4x4)")
        acts = {"relu": ReLU, "tanh": Tanh}
        pools = {"max": MaxPool2d, "avg": AvgPool2d}
        if activation not in acts or pool not in pools:
            raise ValueError(f"LeNet5: activation must be 'relu' or 'tanh' and pool 'max' or 'avg', got "
                             f"{activation!r} and {pool!r}")
        act, pl = acts[activation], pools[pool]
        h, w = h // 2, w // 2  # conv1 keeps the size, pool halves it
        pad2 = 0 if min(h, w) >= 10 else 2
        h, w = (h - 4 + 2 * pad2) // 2, (w - 4 + 2 * pad2) // 2
        self.num_features = 16 * h * w  # what the classifier sees: 400 for 28x28 inputs
        self.features = Sequential(
            Conv2d(in_channels, 6, 5, padding=2), act(), pl(2),
            Conv2d(6, 16, 5, padding=pad2), act(), pl(2),
        )
        self.flatten = Flatten()
        self.classifier = Sequential(
            Linear(self.num_features, 120), act(),
            Linear(120, 84), act(),
            Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def _conv_bn_relu(cin, cout, stride=1):
    return [Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), BatchNorm2d(cout), ReLU()]


class SmallVGG(Module):
    """VGG-style: per block ``convs_per_block`` x (conv3x3 -> BatchNorm2d -> ReLU), then MaxPool2d(2);
    a global average pool and a linear classifier at the end (any input at least 2**blocks pixels)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, channels=(32, 64, 128),
                 convs_per_block: int = 2, dropout: float = 0.0):
        super().__init__()
        _positive("SmallVGG", in_channels=in_channels, num_classes=num_classes, convs_per_block=convs_per_block)
        channels = tuple(channels)
        if not channels:
            raise ValueError("SmallVGG: channels must list at least one block width")
        _positive("SmallVGG", **{f"channels[{i}]": c for i, c in enumerate(channels)})
        layers, cin = [], in_channels
        for cout in channels:
            for _ in range(convs_per_block):
                layers += _conv_bn_relu(cin, cout)
                cin = cout
            layers.append(MaxPool2d(2))
        self.features = Sequential(*layers)
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        head = []
        if dropout:
            head.append(Dropout(dropout))
        head.append(Linear(cin, num_classes))
        self.classifier = Sequential(*head)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


class BasicBlock(Module):
    """ResNet's basic block: conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.

    The shortcut is the identity, or conv1x1 (stride) -> BN when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()

        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                       BatchNorm2d(out_channels))
        else:
            self.shortcut = Sequential()

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class SmallResNet(Module):
    """A CIFAR-style ResNet: stem conv3x3 -> BN -> ReLU, one stage of ``BasicBlock``s per entry of
    ``channels`` (the first at stride 1, the others halving the size), global average pool, linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, channels=(16, 32, 64), blocks_per_stage=1):
        super().__init__()
        _positive("SmallResNet", in_channels=in_channels, num_classes=num_classes)
        channels = tuple(channels)
        blocks = (blocks_per_stage,) * len(channels) if isinstance(blocks_per_stage, int) else tuple(blocks_per_stage)
        if not channels or len(blocks) != len(channels):
            raise ValueError(f"SmallResNet: channels {channels} and blocks_per_stage {blocks_per_stage!r} must "
                             "be non-empty and of the same length")
        _positive("SmallResNet", **{f"channels[{i}]": c for i, c in enumerate(channels)},
                  **{f"blocks_per_stage[{i}]": b for i, b in enumerate(blocks)})
        self.stem = Sequential(*_conv_bn_relu(in_channels, channels[0]))
        stages, cin = [], channels[0]
        for i, (cout, n) in enumerate(zip(channels, blocks)):
            for j in range(n):
                stages.append(BasicBlock(cin, cout, stride=2 if i > 0 and j == 0 else 1))
                cin = cout
        self.layers = Sequential(*stages)
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


__all__ = ["BasicBlock", "LeNet5", "SmallResNet", "SmallVGG"]
