"""``BanachWGAN``: a Wasserstein GAN as a ``LightningModule`` with manual optimisation."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from lipreg._validation import check_real, first_tensor

from ._logging import log_penalty


def _lightning_module() -> type:
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            base: type = importlib.import_module(name).LightningModule
        except ImportError:
            continue
        return base
    raise ImportError(
        "lipreg.integrations.lightning.BanachWGAN needs PyTorch Lightning: "
        "pip install 'lipreg[lightning]' (or pytorch_lightning)"
    )


if TYPE_CHECKING:
    from lightning.pytorch import LightningModule
else:
    LightningModule = _lightning_module()


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class BanachWGAN(LightningModule):
    """A Wasserstein GAN trained with Lightning, its critic regularised by ``penalty``.

    Every training batch makes one critic step on

        d_loss = E D(G(z)) - E D(x) + penalty(D, x, G(z)),

    and every ``n_critic``-th batch of an epoch also one generator step on
    ``g_loss = -E D(G(z))`` (WGAN-GP's schedule, Gulrajani et al. 2017). With
    ``penalty = lipreg.BanachGP("l2", lam=10, gamma=1)`` this is WGAN-GP; any other lipreg
    penalty or norm is the same line. The penalty is a submodule, so its state (``"auto"``
    estimates) is in Lightning's checkpoints, and its statistics are logged every step
    under ``log_prefix`` (see :func:`lipreg.integrations.lightning.log_penalty`), with
    ``d_loss`` and ``g_loss``. Under DDP the penalty's ``"auto"`` estimates are averaged
    across processes by the penalty itself.

    Args:
        generator: ``G(z)``: latents ``[B, latent_dim]`` -> samples shaped like the data.
        critic: ``D(x)``: samples ``[B, ...]`` -> scores ``[B]`` or ``[B, 1]``.
        penalty: a lipreg penalty module, called as ``penalty(critic, real, fake)``.
        latent_dim: size of ``z ~ N(0, I)``.
        n_critic: critic steps per generator step.
        lr, betas: Adam's, for both networks (WGAN-GP's defaults).
        log_prefix: key prefix of the penalty's statistics.

    Batches are tensors ``[B, ...]`` or tuples/lists whose first element is one.
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        penalty: nn.Module,
        *,
        latent_dim: int,
        n_critic: int = 5,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        log_prefix: str = "penalty/",
    ) -> None:
        for module, name in ((generator, "generator"), (critic, "critic"), (penalty, "penalty")):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(module).__name__}")
        dim = _positive_int(latent_dim, "latent_dim")
        steps = _positive_int(n_critic, "n_critic")
        rate = check_real(lr, "lr", 0.0, float("inf"), open_low=True, open_high=True)
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        beta1, beta2 = (check_real(b, "betas", 0.0, 1.0, open_high=True) for b in betas)
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.critic = critic
        self.penalty = penalty
        self.latent_dim = dim
        self.n_critic = steps
        self.lr = rate
        self.betas = (beta1, beta2)
        self.log_prefix = log_prefix

    def configure_optimizers(self) -> Any:
        """Adam for the generator, then for the critic."""
        adam = torch.optim.Adam
        return [
            adam(self.generator.parameters(), lr=self.lr, betas=self.betas),
            adam(self.critic.parameters(), lr=self.lr, betas=self.betas),
        ]

    def sample_latent(self, n: int, like: Tensor) -> Tensor:
        """``z ~ N(0, I)``, ``[n, latent_dim]``, on ``like``'s device and dtype."""
        return torch.randn(n, self.latent_dim, device=like.device, dtype=like.dtype)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real = first_tensor(batch, f"{type(self).__name__}.training_step")
        optimizers = self.optimizers()
        if not isinstance(optimizers, list) or len(optimizers) != 2:
            raise RuntimeError("configure_optimizers must return [generator's, critic's]")
        opt_g, opt_d = optimizers
        fake = self.generator(self.sample_latent(real.shape[0], real)).detach()
        critic = self.critic
        d_loss = critic(fake).mean() - critic(real).mean() + self.penalty(critic, real, fake)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.log("d_loss", d_loss.detach())
        log_penalty(self, self.penalty, self.log_prefix)
        if batch_idx % self.n_critic == self.n_critic - 1:
            g_loss = -critic(self.generator(self.sample_latent(real.shape[0], real))).mean()
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            self.log("g_loss", g_loss.detach())
