"""The c-transform WGAN critic loss (Mallasto, Frellsen, Boomsma, Feragen, 2019) in any norm.

Kantorovich duality for the cost ``c(x, y) = ||x - y||_B`` writes the Wasserstein-1 distance
between the real and generated distributions as

    W(P_r, P_g) = sup_D  E_{x ~ P_r} D(x) + E_{y ~ P_g} D^c(y),
    D^c(y) = inf_x ||x - y||_B - D(x)        (the c-transform of D).

The c-transform WGAN replaces the Lipschitz constraint by this transform, with the infimum taken
over the real samples of the batch, ``D^c(y_j) = min_i ||x_i - y_j||_B - D(x_i)``. ``D^c`` is
automatically 1-Lipschitz in ``B`` (a minimum of 1-Lipschitz functions of ``y``), so no
penalty is needed.

Sign conventions: the critic *maximises* ``W_hat = mean_i D(x_i) + mean_j D^c(y_j)`` (the batch
estimate of ``W``); :class:`CTransformLoss` returns ``-W_hat``, the quantity to *minimise* in
the critic step. The generator minimises ``W_hat`` itself, i.e. the negative of the returned
loss (only ``mean_j D^c(y_j)`` depends on the fakes, through the distances).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from lipreg._validation import check_critic, check_pair, check_scores
from lipreg.derivative import Critic, call_critic
from lipreg.norms import Norm, parse_norm
from lipreg.pairwise import pairwise_distances


def c_transform(d_real: Tensor, real: Tensor, fake: Tensor, norm: Norm | str = "l2") -> Tensor:
    """``D^c(y_j) = min_i ||x_i - y_j||_B - D(x_i)`` for every fake ``y_j``: ``[M]``.

    Args:
        d_real: critic scores ``D(x_i)`` of the real batch, ``[B]`` or ``[B, 1]``.
        real: the real batch ``x``, ``[B, ...]``.
        fake: the generated batch ``y``, ``[M, ...]`` with the per-sample shape of ``real``.
        norm: the norm of ``B`` (a :class:`lipreg.Norm` or a text spec).

    The ``B x M`` distances come from :func:`lipreg.pairwise_distances` (one transform per
    sample and ``torch.cdist`` for ``L^p`` and Sobolev norms). Differentiable in ``d_real``
    (the critic) and in ``fake`` (the generator); the gradient of the minimum flows through
    the minimising real sample.
    """
    check_pair(real, fake, "real", "fake")
    scores = check_scores(d_real, real.shape[0], "d_real", "pass critic(real)")
    cost = pairwise_distances(real, fake, parse_norm(norm))  # [B, M]
    return (cost - scores.unsqueeze(1).to(cost.dtype)).amin(dim=0)


class CTransformLoss(nn.Module):
    """The c-transform WGAN critic loss ``-(mean_i D(x_i) + mean_j D^c(y_j))`` in norm ``B``.

    ``D^c(y_j) = min_i ||x_i - y_j||_B - D(x_i)`` over the real batch (Mallasto et al., 2019;
    see the module docstring for the duality and the signs). A call evaluates the critic on
    ``real`` only: the c-transform needs no scores of the fakes. Minimise the returned value in
    the critic step; the generator minimises its negative, the Wasserstein estimate ``W_hat``.
    There is no state and no parameter.

    Args:
        norm: the norm of ``B`` (a :class:`lipreg.Norm` or a text spec such as ``"lp:p=10"``).

    Shapes:
        ``critic(x, **critic_kwargs)``: ``[B, ...] -> [B]`` or ``[B, 1]``; ``real`` ``[B, ...]``;
        ``fake`` ``[M, ...]``; returns a 0-dim tensor.
    """

    def __init__(self, norm: Norm | str = "l2") -> None:
        super().__init__()
        self.norm = parse_norm(norm)
        if self.norm.local:
            raise ValueError(
                f"{self.norm!r} is a local norm and defines no cost ||x - y||_B between points; "
                "the c-transform needs a global norm (L2(), Lp(p), Sobolev(s))"
            )

    def forward(self, critic: Critic, real: Tensor, fake: Tensor, **critic_kwargs: Any) -> Tensor:
        """``-(mean D(real) + mean D^c(fake))``, a 0-dim tensor to minimise in the critic step."""
        check_critic(critic, "loss(critic, real, fake)")
        check_pair(real, fake, "real", "fake")
        self.norm.check(real, "real")
        d_real = call_critic(critic, real, critic_kwargs)
        d_c = c_transform(d_real, real, fake, self.norm)
        return -(d_real.to(d_c.dtype).mean() + d_c.mean())

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}"
