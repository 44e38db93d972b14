"""AutoencoderTrainer: the target is the clean input, transforms touch inputs only, labels are ignored,
a VAE trains on the negative ELBO, and a denoising run resumes bit-identically."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.data import load_digits
from deepwise.data.transforms import GaussianNoise, RandomMask
from deepwise.models.generative import VAE, DenseAutoencoder, vae_loss_terms
from deepwise.optim import Adam
from deepwise.train import LambdaCallback, load_training_checkpoint
from deepwise.train.autoencoder import AutoencoderTrainer


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(split="train", as_images=True)
    return x[:128], y[:128]


def _ae(seed=0, **kw):
    dw.manual_seed(seed)
    m = DenseAutoencoder(latent_dim=4, hidden=(32,))
    return AutoencoderTrainer(m, Adam(m.parameters(), 3e-3), **kw)


def _mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def test_target_is_the_clean_input_and_the_transform_touches_inputs_only(digits):
    x, y = digits
    seen = []

    def blank(batch):  # a deterministic "corruption": erase the top half of every image
        seen.append(np.asarray(batch.array).copy())
        out = np.asarray(batch.array).copy()
        out[:, :, :4] = 0.0
        return dw.tensor(out)

    t = _ae(input_transform=blank)
    batch = (dw.tensor(x[:16]), dw.tensor(y[:16]))
    logs = t.eval_step(batch)
    np.testing.assert_array_equal(seen[-1], x[:16])  # the transform saw the clean batch
    corrupted = x[:16].copy()
    corrupted[:, :, :4] = 0.0
    with dw.no_grad():
        expected = _mse(t.model(dw.tensor(corrupted)).numpy(), x[:16])  # model(corrupted) vs clean
    np.testing.assert_allclose(logs["loss"].item(), expected, rtol=1e-5)
    # predict() reconstructs what it is given, without the transform
    np.testing.assert_allclose(t.predict(corrupted), t.model(dw.tensor(corrupted)).detach().numpy(), rtol=1e-6)


def test_float_y_of_the_input_shape_is_the_target(digits):
    x, _ = digits
    noisy = np.clip(x[:16] + 0.3, 0, 1).astype(np.float32)
    t = _ae()
    logs = t.eval_step((dw.tensor(noisy), dw.tensor(x[:16])))
    with dw.no_grad():
        expected = _mse(t.model(dw.tensor(noisy)).numpy(), x[:16])
    np.testing.assert_allclose(logs["loss"].item(), expected, rtol=1e-5)


def test_fit_without_labels_learns(digits):
    x, y = digits
    t = _ae()
    h = t.fit(x, epochs=8, batch_size=16, verbose=0, validation_data=x[:32])
    assert h["loss"][-1] < 0.6 * h["loss"][0]
    assert "val_loss" in h.history
    # labels given as y are ignored: the same run with y gives the same weights
    t2 = _ae()
    t2.fit(x, y, epochs=8, batch_size=16, verbose=0, validation_data=(x[:32], y[:32]))
    for (k, a), (_, b) in zip(t.model.state_dict().items(), t2.model.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert t.encode(x[:5]).shape == (5, 4)
    assert set(t.evaluate(x[:32])) == {"loss"}


def test_vae_trains_on_the_negative_elbo(digits):
    x, _ = digits
    dw.manual_seed(0)
    vae = VAE(latent_dim=3, hidden=(32,))
    t = AutoencoderTrainer(vae, Adam(vae.parameters(), 3e-3), kl_weight=0.5)
    batch = (dw.tensor(x[:16]),)
    dw.manual_seed(9)
    logs = t.eval_step(batch)
    dw.manual_seed(9)
    with dw.no_grad():
        logits, mu, logvar = vae(dw.tensor(x[:16]))
        recon, kl = vae_loss_terms(logits, dw.tensor(x[:16]), mu, logvar)
    np.testing.assert_allclose(logs["recon"].item(), recon.item(), rtol=1e-6)
    np.testing.assert_allclose(logs["kl"].item(), kl.item(), rtol=1e-6)
    np.testing.assert_allclose(logs["loss"].item(), recon.item() + 0.5 * kl.item(), rtol=1e-6)
    h = t.fit(x, epochs=5, batch_size=16, verbose=0)
    assert {"loss", "recon", "kl"} <= set(h.history) and h["loss"][-1] < h["loss"][0]
    assert t.predict(x[:4]).shape == (4, 1, 8, 8)


def test_denoising_run_resumes_bit_identically(digits, tmp_path):
    """The noise is drawn from the seeded generator, which the checkpoint saves: 128 / 16 = 8 batches
    per epoch, a checkpoint every 5 batches lands mid-epoch."""
    x, _ = digits
    noise = GaussianNoise(0.3, clip=(0, 1))
    ref = _ae(seed=4, input_transform=noise)
    ref_hist = ref.fit(x, epochs=2, batch_size=16, verbose=0)

    class Stop(Exception):
        pass

    first = _ae(seed=4, input_transform=noise)

    def stop(batch, logs):
        if first.state.global_step == 12:
            raise Stop

    with pytest.raises(Stop):
        first.fit(x, epochs=2, batch_size=16, verbose=0, checkpoint_dir=tmp_path, checkpoint_every=5,
                  callbacks=[LambdaCallback(on_train_batch_begin=stop)])
    assert load_training_checkpoint(tmp_path).position["global_step"] == 10
    second = _ae(seed=7, input_transform=noise)
    dw.manual_seed(1)
    hist = second.fit(x, epochs=2, batch_size=16, verbose=0, resume_from=tmp_path)
    for (k, a), (_, b) in zip(ref.model.state_dict().items(), second.model.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert hist.history == ref_hist.history
    # and the noise mattered: without it the run ends elsewhere
    clean = _ae(seed=4)
    clean.fit(x, epochs=2, batch_size=16, verbose=0)
    assert not np.array_equal(clean.model.state_dict()["encoder.1.weight"].numpy(),
                              ref.model.state_dict()["encoder.1.weight"].numpy())


def test_masking_transform_and_errors(digits):
    x, _ = digits
    t = _ae(input_transform=RandomMask(0.5))
    assert np.isfinite(t.fit(x[:32], epochs=1, batch_size=16, verbose=0)["loss"]).all()
    with pytest.raises(TypeError, match="input_transform"):
        _ae(input_transform=3)
    with pytest.raises(ValueError, match="kl_weight"):
        _ae(kl_weight=-1)
    bad = _ae(input_transform=lambda b: dw.tensor(np.asarray(b.array)[:, :, :4]))
    with pytest.raises(ValueError, match="changed the batch shape"):
        bad.fit(x[:16], epochs=1, batch_size=16, verbose=0)
