"""``AutoencoderTrainer``: ``Trainer`` for models that learn to reproduce their input — plain,
denoising and variational autoencoders.

    ae = ConvAutoencoder(latent_dim=8)
    trainer = AutoencoderTrainer(ae, Adam(ae.parameters(), 1e-3))              # loss: MSE to the input
    trainer.fit(x, epochs=30, validation_data=x_val)                           # no labels needed
    denoiser = AutoencoderTrainer(ae, opt, input_transform=GaussianNoise(0.2, clip=(0, 1)))
    vae_trainer = AutoencoderTrainer(VAE(latent_dim=8), opt)                   # negative ELBO

The target is the clean input. ``input_transform`` (a ``deepwise.data.transforms`` transform such
as ``GaussianNoise`` or ``RandomMask``, or any callable on a batch) corrupts the model's *input*
only, in training and validation, drawing from the seeded generator (so runs and resumes repeat).
If a batch carries a ``y`` of the same shape and float type as x, that ``y`` is the target instead
(pairs of noisy / clean images prepared in advance); any other ``y`` (class labels) is ignored.

A model with ``variational = True`` (``VAE``) is trained on the negative ELBO
``reconstruction + kl_weight * kl`` (see ``models.generative.vae_loss_terms``); the logs then hold
``recon`` and ``kl`` besides ``loss``. ``predict(x)`` gives reconstructions (a VAE decodes its mean
code), without the input transform: pass noisy images to see them denoised.
"""

from __future__ import annotations

from deepwise import backend
from deepwise.data import DataLoader, TensorDataset
from deepwise.models.generative import vae_loss_terms
from deepwise.nn.inference import embeddings
from deepwise.tensor import Tensor
from deepwise.train.trainer import Trainer

__all__ = ["AutoencoderTrainer", "UnsupervisedFitMixin"]


def _is_plain_array(x) -> bool:
    return isinstance(x, Tensor) or backend.is_array(x) or (isinstance(x, list) and len(x) > 0)


def _wrap(x):
    return TensorDataset(x) if _is_plain_array(x) and not isinstance(x, DataLoader) else x


class UnsupervisedFitMixin:
    """``fit(x)`` / ``evaluate(x)`` / ``validation_data=x_val`` with arrays and no targets: the arrays
    become a ``TensorDataset`` of inputs alone (``Trainer`` itself asks for ``y`` with arrays)."""

    def fit(self, x, y=None, *args, validation_data=None, **kwargs):
        if y is None:
            x = _wrap(x)
        if validation_data is not None:
            validation_data = _wrap(validation_data)
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x, y=None, *args, **kwargs):
        if y is None:
            x = _wrap(x)
        return super().evaluate(x, y, *args, **kwargs)


class AutoencoderTrainer(UnsupervisedFitMixin, Trainer):
    """Train an autoencoder to reconstruct its (clean) input; see the module docstring.

    Args:
        model: an autoencoder (``DenseAutoencoder``, ``ConvAutoencoder``, ``VAE`` or any module whose
            output has the input's shape).
        optimizer: a ``deepwise.optim`` optimizer over its parameters.
        loss: reconstruction loss of non-variational models (a ``Trainer`` loss name or function;
            default ``"mse"``). A VAE always uses the Bernoulli negative ELBO.
        input_transform: corrupts the inputs (denoising autoencoder); None for a plain one.
        kl_weight: weight of the KL term of a VAE (1 = the ELBO; beta-VAE otherwise).
        scheduler, scheduler_interval, device: as for ``Trainer``.
    """

    def __init__(self, model, optimizer=None, loss="mse", input_transform=None, kl_weight: float = 1.0,
                 scheduler=None, scheduler_interval: str = "epoch", device=None):
        if input_transform is not None and not callable(input_transform):
            raise TypeError(f"AutoencoderTrainer: input_transform must be callable (a transform), got "
                            f"{type(input_transform).__name__}")
        if isinstance(kl_weight, bool) or not isinstance(kl_weight, (int, float)) or not kl_weight >= 0:
            raise ValueError(f"AutoencoderTrainer: kl_weight must be a number >= 0, got {kl_weight!r}")
        super().__init__(model, optimizer=optimizer, loss=loss, scheduler=scheduler,
                         scheduler_interval=scheduler_interval, device=device)
        self.input_transform = input_transform
        self.kl_weight = float(kl_weight)
        self.variational = bool(getattr(model, "variational", False))

    def corrupt(self, x: Tensor) -> Tensor:
        """The model's input for clean images x: ``input_transform(x)`` (a new Tensor without a graph)."""
        if self.input_transform is None:
            return x
        out = self.input_transform(x)
        out = out if isinstance(out, Tensor) else Tensor._make(out)
        if tuple(out.shape) != tuple(x.shape):
            raise ValueError(f"AutoencoderTrainer: input_transform changed the batch shape from {tuple(x.shape)} to "
                             f"{tuple(out.shape)}; the target is the clean input, so shapes must match")
        return out.detach()

    @staticmethod
    def _target(x, y):
        if y is not None and backend.is_floating(y.dtype) and tuple(y.shape) == tuple(x.shape):
            return y
        return x

    def _losses(self, batch) -> tuple:
        x, y, _ = self.unpack_batch(batch)
        target = self._target(x, y)
        inp = self.corrupt(x)
        if self.variational:
            logits, mu, logvar = self.forward(inp)
            recon, kl = vae_loss_terms(logits, target, mu, logvar)
            loss = recon + kl * self.kl_weight if self.kl_weight != 1.0 else recon + kl
            return loss, {"loss": loss, "recon": recon.detach(), "kl": kl.detach()}
        out = self.forward(inp)
        if tuple(out.shape) != tuple(target.shape):
            raise ValueError(f"AutoencoderTrainer: the model's output has shape {tuple(out.shape)} but its target (the "
                             f"input) has shape {tuple(target.shape)}; an autoencoder must reproduce its input's shape")
        loss = self.compute_loss(out, target)
        return loss, {"loss": loss}

    def train_step(self, batch) -> dict:
        loss, logs = self._losses(batch)
        self.backward(loss)
        self.optimizer_step()
        return logs

    def eval_step(self, batch) -> dict:
        return self._losses(batch)[1]

    def predict_step(self, batch):
        """Reconstructions of the batch's x (no input transform; a VAE decodes its mean code)."""
        x, _, _ = self.unpack_batch(batch)
        return self.model.reconstruct(x) if hasattr(self.model, "reconstruct") else self.forward(x)

    def encode(self, x, batch_size: int = 256):
        """``model.encode`` over x in eval mode, as a NumPy array (the embeddings)."""
        return embeddings(self.model, x, batch_size)
