"""GANTrainer: each phase updates only its network, the penalties match PyTorch, checkpoints hold both
networks and both optimizers, and a resumed run is bit-identical to an uninterrupted one."""

from __future__ import annotations

import os

import numpy as np
import pytest

import deepwise as dw
from deepwise.data import load_digits
from deepwise.models.generative import GAN, Discriminator, Generator
from deepwise.optim import SGD, Adam
from deepwise.train import LambdaCallback, load_training_checkpoint
from deepwise.train.gan import GANTrainer, SampleGrid


@pytest.fixture(scope="module")
def digits():
    x, _ = load_digits(split="train", as_images=True)
    return x[:96]


def _params(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items() if not k.endswith(("running_mean",
            "running_var", "num_batches_tracked"))}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _build(seed=0, gp=0.0, penalty="r1", smoothing=0.0, lr=1e-3):
    dw.manual_seed(seed)
    g, d = Generator(8, 1, 8, base_channels=8), Discriminator(1, 8, base_channels=8)
    return GANTrainer(g, d, Adam(g.parameters(), lr, betas=(0.5, 0.999)), Adam(d.parameters(), lr, betas=(0.5, 0.999)),
                      latent_dim=8, label_smoothing=smoothing, gradient_penalty=gp, penalty=penalty)


@pytest.mark.parametrize("gp", [0.0, 1.0])
def test_each_phase_updates_only_its_network(digits, gp):
    t = _build(gp=gp)
    g0, d0 = _params(t.generator), _params(t.discriminator)
    seen = {}

    def before_step(optimizer):
        if optimizer is t.d_optimizer:
            # the discriminator phase: the generator got no gradient and has not moved
            assert all(p.grad is None for p in t.generator.parameters())
            assert _same(_params(t.generator), g0)
            assert all(p.grad is not None for p in t.discriminator.parameters())
            seen["d"] = True
        else:
            assert optimizer is t.g_optimizer
            # the generator phase: the discriminator moved once (its own step) and got no new gradient
            assert all(p.grad is None for p in t.discriminator.parameters())
            assert all(p.requires_grad for p in t.discriminator.parameters())  # frozen only inside the phase
            seen["d_after_its_step"] = _params(t.discriminator)
            assert not _same(seen["d_after_its_step"], d0)
            assert _same(_params(t.generator), g0)
            assert all(p.grad is not None for p in t.generator.parameters())
            seen["g"] = True

    t.fit(digits[:32], epochs=1, batch_size=32, verbose=0,
          callbacks=[LambdaCallback(on_before_optimizer_step=before_step)])
    assert seen.get("d") and seen.get("g")
    # the generator step changed the generator only
    assert _same(_params(t.discriminator), seen["d_after_its_step"])
    assert not _same(_params(t.generator), g0)


def test_logs_and_losses(digits):
    t = _build(gp=0.5, smoothing=0.1)
    h = t.fit(digits, epochs=2, batch_size=32, verbose=0, validation_data=digits[:32])
    for key in ("loss", "d_loss", "g_loss", "d_real", "d_fake", "gp", "val_d_loss", "val_g_loss", "val_loss"):
        assert key in h.history and np.isfinite(h.history[key]).all(), key
    np.testing.assert_allclose(np.array(h["loss"]), np.array(h["d_loss"]) + np.array(h["g_loss"]), rtol=1e-5)
    assert all(0 < v < 1 for v in h["d_real"] + h["d_fake"])
    assert all(v >= 0 for v in h["gp"])
    ev = t.evaluate(digits[:32])
    assert set(ev) >= {"loss", "d_loss", "g_loss"}
    images = t.predict(np.zeros((5, 8), np.float32))
    assert images.shape == (5, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert t.sample(3).shape == (3, 1, 8, 8)


def test_one_sided_label_smoothing_changes_only_the_real_target(digits):
    t = _build(smoothing=0.2)
    logits = dw.tensor([[2.0], [-1.0]])
    np.testing.assert_allclose(t._bce(logits, 0.8).item(),
                               np.mean([0.2 * 2.0 + np.log1p(np.exp(-2.0)), 0.2 * -1.0 + np.log1p(np.exp(1.0))]),
                               rtol=1e-6)
    # the discriminator loss with smoothing s on real images = BCE(real, 1 - s) + BCE(fake, 0), checked
    # through a step that records the logits
    records = {}
    orig = t._logits

    def spy(images):
        out = orig(images)
        records.setdefault("calls", []).append(out.detach().numpy())
        return out

    t._logits = spy
    logs = t.train_step((dw.tensor(digits[:16]),))
    real, fake = records["calls"][0], records["calls"][1]

    def bce(z, y):
        return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))

    np.testing.assert_allclose(logs["d_loss"].item(), bce(real, 0.8) + bce(fake, 0.0), rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"].item(), bce(records["calls"][2], 1.0), rtol=1e-5)


@pytest.mark.parametrize("penalty", ["r1", "wgan-gp"])
def test_penalty_matches_torch(digits, penalty, torch):
    t = _build(gp=1.0, penalty=penalty)
    disc = t.discriminator
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(8, 16, 4, 2, 1),
                               torch.nn.LeakyReLU(0.2), torch.nn.Flatten(), torch.nn.Linear(16 * 2 * 2, 1))
    tnet.load_state_dict({k[len("net."):]: torch.tensor(v.numpy()) for k, v in disc.state_dict().items()})
    real = digits[:6]
    fake = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)

    dw.manual_seed(7)
    eps = np.asarray(dw.rand(6, 1, 1, 1).numpy())  # the draw penalty_term makes after the same seed
    dw.manual_seed(7)
    pen = t.penalty_term(dw.tensor(real), dw.tensor(fake))
    pen.backward()

    x = torch.tensor(real) if penalty == "r1" else torch.tensor(real * eps + fake * (1 - eps))
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(tnet(x).sum(), x, create_graph=True)
    sq = (g * g).reshape(6, -1).sum(1)
    tpen = sq.mean() if penalty == "r1" else (((sq + 1e-12) ** 0.5 - 1) ** 2).mean()
    tpen.backward()
    np.testing.assert_allclose(pen.item(), tpen.item(), rtol=1e-4)
    for (name, p), tp in zip(disc.named_parameters(), tnet.parameters()):
        if p.grad is None:  # with piecewise-linear activations, biases do not reach d D(x) / dx
            assert name.endswith("bias")
            assert tp.grad is None or not tp.grad.abs().sum().item()
        else:
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-3, atol=1e-6, err_msg=name)


class _Abort(Exception):
    pass


def _fit(t, x, **kw):
    return t.fit(x, epochs=3, batch_size=16, verbose=0, validation_data=x[:16], **kw)


def test_resume_mid_training_is_bit_identical(digits, tmp_path):
    """96 images / 16 = 6 batches per epoch; checkpoints every 4 batches land mid-epoch."""
    ref = _build(seed=2, gp=1.0, smoothing=0.1)
    ref_hist = _fit(ref, digits)

    first = _build(seed=2, gp=1.0, smoothing=0.1)

    def abort(batch, logs):
        if first.state.global_step == 10:
            raise _Abort

    with pytest.raises(_Abort):
        _fit(first, digits, checkpoint_dir=tmp_path, checkpoint_every=4,
             callbacks=[LambdaCallback(on_train_batch_begin=abort)])
    ck = load_training_checkpoint(tmp_path)
    assert ck.position["global_step"] == 8 and ck.position["batch"] == 2  # mid-epoch 2
    assert set(ck.objects) >= {"optimizer", "d_optimizer"}
    assert any(k.startswith("generator.") for k in ck.model) and any(k.startswith("discriminator.") for k in ck.model)

    second = _build(seed=99, gp=1.0, smoothing=0.1)  # other weights, other generator state
    dw.manual_seed(12345)
    hist = _fit(second, digits, resume_from=tmp_path)
    assert _same({k: v.numpy() for k, v in ref.model.state_dict().items()},
                 {k: v.numpy() for k, v in second.model.state_dict().items()})
    assert hist.history == ref_hist.history
    for a, b in ((ref.optimizer, second.optimizer), (ref.d_optimizer, second.d_optimizer)):
        sa, sb = a.state_dict()["state"], b.state_dict()["state"]
        assert sa.keys() == sb.keys() and sa
        for k in sa:
            np.testing.assert_array_equal(sa[k]["exp_avg_sq"].numpy(), sb[k]["exp_avg_sq"].numpy())


def test_sample_grid_writes_pngs_and_leaves_training_unchanged(digits, tmp_path):
    plain = _build(seed=3)
    plain.fit(digits, epochs=2, batch_size=32, verbose=0)
    with_grid = _build(seed=3)
    grid = SampleGrid(tmp_path / "samples", n=16, nrow=4, seed=1)
    with_grid.fit(digits, epochs=2, batch_size=32, verbose=0, callbacks=[grid])
    assert [os.path.basename(p) for p in grid.paths] == ["samples_epoch001.png", "samples_epoch002.png"]
    for p in grid.paths:
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert _same(_params(plain.model), _params(with_grid.model))
    assert with_grid.model.training


def test_argument_errors():
    g, d = Generator(8, 1, 8, base_channels=8), Discriminator(1, 8, base_channels=8)
    ok_g, ok_d = Adam(g.parameters()), Adam(d.parameters())
    with pytest.raises(ValueError, match="discriminator"):
        GANTrainer(g, d, Adam(list(g.parameters()) + list(d.parameters())), ok_d, 8)
    with pytest.raises(ValueError, match="generator"):
        GANTrainer(g, d, ok_g, SGD(g.parameters(), lr=0.1), 8)
    with pytest.raises(ValueError, match="label_smoothing"):
        GANTrainer(g, d, ok_g, ok_d, 8, label_smoothing=0.7)
    with pytest.raises(ValueError, match="gradient_penalty"):
        GANTrainer(g, d, ok_g, ok_d, 8, gradient_penalty=-1.0)
    with pytest.raises(ValueError, match="penalty must be one of"):
        GANTrainer(g, d, ok_g, ok_d, 8, penalty="l2")
    t = GANTrainer(g, d, ok_g, ok_d)  # latent_dim from the generator
    assert t.latent_dim == 8 and isinstance(t.model, GAN)
    with pytest.raises(ValueError, match="latent vectors"):
        t.predict(np.zeros((2, 5), np.float32))
