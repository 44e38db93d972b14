"""``torch.distributions`` on deepwise: the distributions VAEs and reinforcement-learning programs use,
built on deepwise's tensor ops so that gradients flow (``rsample`` is reparameterised).

    from deepwise.distributions import Normal, Categorical, kl_divergence
    z = Normal(mu, std).rsample()                          # a VAE's latent, differentiable in mu, std
    kl = kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum()
    dist = Categorical(logits=policy(obs)); a = dist.sample(); loss = -(dist.log_prob(a) * ret).mean()

The module paths are PyTorch's (``distributions.normal.Normal``, ``distributions.kl.kl_divergence``).
Not here yet: MultivariateNormal, Beta, Gamma, Dirichlet, transforms, and ``Normal.cdf`` / ``icdf``
(they need ``erf``, which deepwise does not have).
"""

from deepwise.distributions import bernoulli, categorical, distribution, independent, kl, normal, uniform, utils
from deepwise.distributions.bernoulli import Bernoulli
from deepwise.distributions.categorical import Categorical
from deepwise.distributions.distribution import Distribution
from deepwise.distributions.independent import Independent
from deepwise.distributions.kl import kl_divergence, register_kl
from deepwise.distributions.normal import Normal
from deepwise.distributions.uniform import Uniform

__all__ = [
    "Bernoulli", "Categorical", "Distribution", "Independent", "Normal", "Uniform", "bernoulli", "categorical",
    "distribution", "independent", "kl", "kl_divergence", "normal", "register_kl", "uniform", "utils",
]
