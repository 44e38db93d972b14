"""An offline stand-in for the few torchvision names the corpus programs use.

torchvision's datasets download MNIST/CIFAR-10 from the network, which tests may not reach. This
stand-in serves deepwise's bundled 8x8 digits instead (1,797 images, ``deepwise.data.load_digits``),
enlarged to the size the program expects, with the same dataset/transform/save_image interface. It
imports ``torch``, so under ``deepwise run`` it runs on deepwise and under plain Python on PyTorch:
the same data for both frameworks.
"""

from torchvision import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]
