"""The trainer's ``--loss ctransform``: the c-transform WGAN (Mallasto et al. 2019) with the
run's ``--norm`` as the cost, through :class:`lipreg.CTransformLoss`.

With the real batch ``x_1..x_B`` and fakes ``y_1..y_M``, the batch estimate of the
Wasserstein-1 distance in ``B`` is

    W_hat = mean_i D(x_i) + mean_j D^c(y_j),   D^c(y) = min_i ||x_i - y||_B - D(x_i).

The critic step minimises ``-W_hat`` (the critic is scored on real samples only; ``D^c`` is
1-Lipschitz by construction, so no penalty or constraint is added); the generator step
minimises ``mean_j D^c(G(z_j))`` against a fresh real batch, the only part of ``W_hat`` that
depends on the fakes (through the distances: the generator's gradient moves each fake
towards the real sample attaining its minimum). ``W_hat`` is logged as ``critic_gap`` and
``wasserstein``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lipreg import CTransformLoss, c_transform
from lipreg.norms import Norm

FORMULA = (
    "c-transform WGAN: critic -(mean D(x_i) + mean_j min_i (||x_i - y_j||_B - D(x_i))) "
    "with the --norm as cost, generator mean_j min_i (||x_i - y_j||_B - D(x_i)); takes "
    "--penalty none"
)


@dataclass
class CTransformObjective:
    """The c-transform losses of the critic and the generator in ``norm``."""

    norm: Norm
    loss: CTransformLoss = field(init=False)

    def __post_init__(self) -> None:
        self.loss = CTransformLoss(self.norm)

    def critic(self, critic: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """``(-W_hat, D(real))``: the critic's loss, a 0-dim tensor, and its scores of
        ``real`` ``[B]`` (for the drift term)."""
        scores: list[Tensor] = []

        def scored(x: Tensor) -> Tensor:
            scores.append(critic(x))
            return scores[-1]

        loss = self.loss(scored, real, fake)
        return loss, scores[0]

    def generator(self, critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        """``mean_j D^c(fake_j)`` against ``real``, a 0-dim tensor (the critic's scores of
        ``real`` carry no gradient)."""
        with torch.no_grad():
            d_real = critic(real)
        return c_transform(d_real, real, fake, self.loss.norm).mean()
