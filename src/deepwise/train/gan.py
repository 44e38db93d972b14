"""``GANTrainer``: adversarial training on top of ``Trainer`` — two networks, two optimizers, one loop.

    g, d = Generator(latent_dim=32), Discriminator()
    trainer = GANTrainer(g, d, Adam(g.parameters(), 2e-4, betas=(0.5, 0.999)),
                         Adam(d.parameters(), 2e-4, betas=(0.5, 0.999)), latent_dim=32,
                         label_smoothing=0.1)
    trainer.fit(x_real, epochs=100, batch_size=64, callbacks=[SampleGrid("samples/")],
                checkpoint_dir="run/")
    images = trainer.predict(latent_vectors)          # the generator's output

Each batch of real images runs two phases (``train_step``):

1. discriminator: fresh noise z, fake = G(z) without a graph; loss
   ``BCE(D(real), 1 - label_smoothing) + BCE(D(fake), 0)`` (+ the gradient penalty); step the
   discriminator's optimizer. The generator's weights cannot change: no gradient reaches them.
2. generator: fresh noise, the non-saturating loss ``BCE(D(G(z)), 1)`` (maximise log D(G(z)) rather
   than minimise log(1 - D(G(z))), which saturates while D wins); the discriminator's parameters
   are frozen (``requires_grad=False``) for this phase, so it computes no gradient for them and
   its weights cannot change; step the generator's optimizer.

``label_smoothing`` is one-sided (real targets only, as Salimans et al. advise: smoothing fake
targets would reward the generator for staying where the data is not). ``gradient_penalty`` > 0
adds ``gradient_penalty * E ||d D(x) / d x||^2`` over real images (``penalty="r1"``, Mescheder et
al. 2018; R1's gamma / 2 is ``gradient_penalty``) or ``gradient_penalty * E (||d D(x^) / d x^|| - 1)^2``
over random interpolates x^ of real and fake images (``penalty="wgan-gp"``, Gulrajani et al. 2017).
Either one differentiates a gradient, through ``autograd.grad(create_graph=True)``.

The two networks live in one ``GAN`` module (``trainer.model``), so checkpoints hold both; the
discriminator's optimizer is added to ``state_objects()``, so they hold both optimizers too, and
``fit(resume_from=...)`` continues bit-identically. Logs per epoch: ``d_loss``, ``g_loss``,
``d_real`` / ``d_fake`` (the discriminator's mean probability of "real" for real and fake images),
``gp`` (with a penalty) and ``loss`` = d_loss + g_loss (a single number for progress bars;
neither loss says how good the samples are — see ``deepwise.diagnostics.generative``).
"""

from __future__ import annotations

import os

import numpy as np

from deepwise.autograd import grad, no_grad
from deepwise.creation import full, rand, randn
from deepwise.io.images import save_image_grid
from deepwise.models.generative import GAN
from deepwise.nn.module import Module
from deepwise.ops.loss import binary_cross_entropy_with_logits
from deepwise.ops.unary import sigmoid
from deepwise.tensor import Tensor
from deepwise.train.autoencoder import UnsupervisedFitMixin
from deepwise.train.callbacks import Callback
from deepwise.train.trainer import Trainer

__all__ = ["GANTrainer", "SampleGrid"]

PENALTIES = ("r1", "wgan-gp")


def _check_optimizer(name, opt, net, other, net_name, other_name):
    if not (hasattr(opt, "step") and hasattr(opt, "param_groups")):
        raise TypeError(f"GANTrainer: {name} must be a deepwise optimizer, got {type(opt).__name__}")
    mine = {id(p) for p in net.parameters()}
    theirs = {id(p) for p in other.parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            if id(p) in theirs:
                raise ValueError(f"GANTrainer: {name} holds parameters of the {other_name} (shape {tuple(p.shape)}); "
                                 f"give it {net_name}.parameters() only, so each phase updates one network")
            if id(p) not in mine:
                raise ValueError(f"GANTrainer: {name} holds a parameter of shape {tuple(p.shape)} that is not in the "
                                 f"{net_name}")


class GANTrainer(UnsupervisedFitMixin, Trainer):
    """Train a generator against a discriminator (see the module docstring).

    Args:
        generator: a module mapping (N, latent_dim) noise to images.
        discriminator: a module mapping images to one logit per image, (N, 1) or (N,).
        g_optimizer, d_optimizer: optimizers over the generator's / discriminator's parameters only.
        latent_dim: size of the noise vectors (default: ``generator.latent_dim``).
        label_smoothing: target for real images is ``1 - label_smoothing`` (one-sided), in [0, 0.5).
        gradient_penalty: weight of the gradient penalty (0 = none).
        penalty: ``"r1"`` (on real images) or ``"wgan-gp"`` (on interpolates, pushing norms to 1).
        scheduler: stepped with the generator's optimizer (``Trainer`` semantics).
        device: move both networks there.

    ``fit(x)`` takes real images alone (labels, if given as ``y``, are ignored); ``predict(z)`` runs the
    generator on latent vectors; ``evaluate(x)`` gives the losses on held-out real images.
    """

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, latent_dim: int | None = None,
                 label_smoothing: float = 0.0, gradient_penalty: float = 0.0, penalty: str = "r1",
                 scheduler=None, scheduler_interval: str = "epoch", device=None):
        for name, m in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(m, Module):
                raise TypeError(f"GANTrainer: {name} must be a deepwise nn.Module, got {type(m).__name__}")
        if generator is discriminator:
            raise ValueError("GANTrainer: the generator and the discriminator must be two different modules")
        _check_optimizer("g_optimizer", g_optimizer, generator, discriminator, "generator", "discriminator")
        _check_optimizer("d_optimizer", d_optimizer, discriminator, generator, "discriminator", "generator")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"GANTrainer: label_smoothing must be a number in [0, 0.5), got {label_smoothing!r}")
        if isinstance(gradient_penalty, bool) or not isinstance(gradient_penalty, (int, float)) \
                or not gradient_penalty >= 0.0:
            raise ValueError(f"GANTrainer: gradient_penalty must be a number >= 0, got {gradient_penalty!r}")
        if penalty not in PENALTIES:
            raise ValueError(f"GANTrainer: penalty must be one of {PENALTIES}, got {penalty!r}")
        super().__init__(GAN(generator, discriminator, latent_dim), optimizer=g_optimizer, loss="bce_with_logits",
                         scheduler=scheduler, scheduler_interval=scheduler_interval, device=device)
        self.d_optimizer = d_optimizer
        self.latent_dim = self.model.latent_dim
        self.label_smoothing = float(label_smoothing)
        self.gradient_penalty = float(gradient_penalty)
        self.penalty = penalty

    # ------------------------------------------------------------------------------ parts
    @property
    def generator(self):
        return self.model.generator

    @property
    def discriminator(self):
        return self.model.discriminator

    @property
    def g_optimizer(self):
        return self.optimizer

    def state_objects(self) -> dict:
        return {**super().state_objects(), "d_optimizer": self.d_optimizer}

    def noise(self, n: int) -> Tensor:
        """n latent vectors z ~ N(0, I), drawn from the seeded generator, on the model's device."""
        return randn(n, self.latent_dim, device=self.device)

    def _logits(self, images):
        out = self.discriminator(images)
        if out.ndim == 2 and out.shape[1] == 1:
            return out
        if out.ndim == 1:
            return out.reshape(-1, 1)
        raise ValueError(f"GANTrainer: the discriminator must give one logit per image, (N, 1) or (N,); it gave "
                         f"{tuple(out.shape)} for images of shape {tuple(images.shape)}")

    @staticmethod
    def _bce(logits, target: float):
        return binary_cross_entropy_with_logits(logits, full(logits.shape, target, dtype=logits.dtype,
                                                             device=logits.device))

    def penalty_term(self, real, fake, real_in=None, real_logits=None):
        """The gradient penalty (unweighted): E ||grad||^2 at real images (R1) or E (||grad|| - 1)^2 at
        interpolates (WGAN-GP), built with ``create_graph=True`` so it can be backpropagated."""
        n = real.shape[0]
        if self.penalty == "r1":
            x, out = real_in, real_logits
            if x is None:
                x = Tensor._make(real.array, True)
                out = self._logits(x)
        else:
            eps = rand(n, *([1] * (real.ndim - 1)), dtype=real.dtype, device=real.device)
            x = Tensor._make((real.detach() * eps + fake.detach() * (1.0 - eps)).array, True)
            out = self._logits(x)
        (g,) = grad(out.sum(), x, create_graph=True)
        sq = (g * g).reshape(n, -1).sum(dim=1)
        if self.penalty == "r1":
            return sq.mean()
        return (((sq + 1e-12) ** 0.5 - 1.0) ** 2).mean()

    # ------------------------------------------------------------------------------ steps
    def train_step(self, batch) -> dict:
        real, _, _ = self.unpack_batch(batch)
        n = real.shape[0]
        gen, disc = self.generator, self.discriminator

        # 1. discriminator: real -> 1 - smoothing, fake -> 0; no graph through the generator
        with no_grad():
            fake = gen(self.noise(n))
        r1 = self.gradient_penalty > 0 and self.penalty == "r1"
        real_in = Tensor._make(real.array, True) if r1 else real
        real_logits = self._logits(real_in)
        fake_logits = self._logits(fake)
        d_loss = self._bce(real_logits, 1.0 - self.label_smoothing) + self._bce(fake_logits, 0.0)
        logs = {"d_loss": d_loss.detach()}
        total = d_loss
        if self.gradient_penalty > 0:
            gp = self.penalty_term(real, fake, real_in, real_logits)
            total = d_loss + gp * self.gradient_penalty
            logs["gp"] = gp.detach()
        self.backward(total)
        self.optimizer_step(self.d_optimizer)

        # 2. generator: non-saturating loss; the discriminator is frozen for this phase
        frozen = [p for p in disc.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad = False
        try:
            g_logits = self._logits(gen(self.noise(n)))
            g_loss = self._bce(g_logits, 1.0)
            self.backward(g_loss)
        finally:
            for p in frozen:
                p.requires_grad = True
        self.optimizer_step(self.optimizer)

        logs.update(g_loss=g_loss.detach(), loss=(d_loss + g_loss).detach(),
                    d_real=sigmoid(real_logits.detach()).mean(), d_fake=sigmoid(fake_logits.detach()).mean())
        return logs

    def eval_step(self, batch) -> dict:
        """The losses on held-out real images and a fresh batch of fakes (no smoothing, no penalty)."""
        real, _, _ = self.unpack_batch(batch)
        fake = self.generator(self.noise(real.shape[0]))
        real_logits, fake_logits = self._logits(real), self._logits(fake)
        d_loss = self._bce(real_logits, 1.0) + self._bce(fake_logits, 0.0)
        g_loss = self._bce(fake_logits, 1.0)
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss,
                "d_real": sigmoid(real_logits).mean(), "d_fake": sigmoid(fake_logits).mean()}

    def predict_step(self, batch):
        """The generator's images for a batch of latent vectors."""
        z, _, _ = self.unpack_batch(batch)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"GANTrainer.predict: expects latent vectors of shape (N, {self.latent_dim}), got "
                             f"{tuple(z.shape)}")
        return self.generator(z)

    def sample(self, n: int) -> np.ndarray:
        """n generated images as a NumPy array (eval mode, no graph; noise from the seeded generator)."""
        was = self.model.training
        self.model.eval()
        try:
            with no_grad():
                out = self.generator(self.noise(n))
        finally:
            self.model.train(was)
        return out.numpy()


class SampleGrid(Callback):
    """After every ``every`` epochs, write a PNG grid of images that the model generates from one
    fixed set of ``n`` latent vectors (drawn once from ``numpy.random.default_rng(seed)``, so the
    global generator and the course of training are untouched, and successive grids are comparable).

    Works with any model that has ``latent_dim`` and ``generate(z)`` (``GAN``, ``VAE``). The model
    runs in eval mode for the grid (batch norm uses running statistics) and goes back to training
    mode. Files: ``directory/<prefix>_epoch<NNN>.png``; ``paths`` lists those written."""

    rank_zero_only = True  # it prints or writes files: under mpiexec, rank 0 alone

    def __init__(self, directory, n: int = 64, nrow: int = 8, seed: int = 0, every: int = 1, scale: int = 4,
                 value_range=(0.0, 1.0), prefix: str = "samples"):
        for key, v in (("n", n), ("nrow", nrow), ("every", every), ("scale", scale)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SampleGrid: {key} must be a positive int, got {v!r}")
        self.directory = os.fspath(directory)
        self.n, self.nrow, self.seed, self.every, self.scale = n, nrow, int(seed), every, scale
        self.value_range = tuple(value_range)
        self.prefix = prefix
        self.paths: list[str] = []
        self._z = None

    def _model(self):
        model = self.trainer.model
        if not (hasattr(model, "generate") and hasattr(model, "latent_dim")):
            raise TypeError(f"SampleGrid: the model {type(model).__name__} has no generate(z) / latent_dim "
                            "(use it with a GAN or a VAE)")
        return model

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        model = self._model()
        if self._z is None or self._z.shape[1] != model.latent_dim:
            self._z = np.random.default_rng(self.seed).standard_normal((self.n, model.latent_dim)).astype(np.float32)
        was = model.training
        model.eval()
        try:
            with no_grad():
                images = model.generate(Tensor(self._z).to(self.trainer.device))
        finally:
            model.train(was)
        path = os.path.join(self.directory, f"{self.prefix}_epoch{epoch + 1:03d}.png")
        save_image_grid(images.numpy(), path, nrow=self.nrow, scale=self.scale, value_range=self.value_range)
        self.paths.append(path)
