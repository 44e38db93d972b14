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
from deepwise.models.gpt import GPT, CausalSelfAttention, GPTBlock

__all__ = ["GAN", "GPT", "VAE", "BasicBlock", "CausalSelfAttention", "ConvAutoencoder", "DenseAutoencoder",
           "Discriminator", "GPTBlock", "Generator", "LeNet5", "SmallResNet", "SmallVGG", "dcgan_init_",
           "vae_loss_terms"]
