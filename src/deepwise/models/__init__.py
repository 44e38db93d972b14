"""Ready-made models built from deepwise layers."""

from deepwise.models.cnn import BasicBlock, LeNet5, SmallResNet, SmallVGG

__all__ = ["BasicBlock", "LeNet5", "SmallResNet", "SmallVGG"]
