"""Ready-made models built from deepwise layers."""

from deepwise.models.cnn import BasicBlock, LeNet5, SmallResNet, SmallVGG
from deepwise.models.generative import (
    GAN,
    VAE,
    ConvAutoencoder,
    DenseAutoencoder,
    Discriminator,
    Generator,
    dcgan_init_,
    vae_loss_terms,
)

__all__ = ["GAN", "VAE", "BasicBlock", "ConvAutoencoder", "DenseAutoencoder", "Discriminator", "Generator",
           "LeNet5", "SmallResNet", "SmallVGG", "dcgan_init_", "vae_loss_terms"]
