"""A Lipschitz penalty on difference quotients: no input gradient, no double backward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
from torch import Tensor

from lipreg._validation import check_bool, check_points, check_scores, described, upcast
from lipreg.calibration import Calibration, Setting
from lipreg.derivative import Critic, call_critic, describe
from lipreg.norms import Norm
from lipreg.penalty import Calibrated, NormPenalty, Stats, raise_if_not_finite
from lipreg.sampling import interpolate

PairSampler: TypeAlias = Callable[[Tensor, "Tensor | None"], tuple[Tensor, Tensor]]

PAIRS = ("real-fake", "real-interpolate", "interpolates")


@dataclass(frozen=True)
class FiniteDifferenceStats(Stats):
    """Statistics of a :class:`FiniteDifferenceGP` call (over pairs at positive distance)."""

    penalty: Tensor  #: the returned value
    quotient_mean: Tensor  #: mean of |D(x) - D(y)| / ||x - y||_B
    quotient_max: Tensor  #: its maximum
    frac_above_gamma: Tensor  #: share of pairs whose quotient exceeds gamma
    lam: Tensor
    gamma: Tensor


class FiniteDifferenceGP(NormPenalty, Calibrated):
    """Lipschitz penalty on difference quotients in a norm ``B`` (the CT-GAN / LP-GAN family:
    the consistency term of Wei et al. 2018 bounds quotients of pairs of points, and the
    adversarial Lipschitz penalty of Terjek 2020 is this formula on adversarial pairs).

    ``D`` is gamma-Lipschitz in ``B`` iff every quotient
    ``q(x, y) = |D(x) - D(y)| / ||x - y||_B`` is at most gamma. A call returns

        penalty = lam * gamma * E[max(0, q(x, y) / gamma - 1)^2]
                = (lam / gamma) * E[max(0, q(x, y) - gamma)^2]

    over pairs ``(x_i, y_i)`` (``one_sided=False`` drops the ``max``): BanachGP's formula
    with the dual norm of the gradient replaced by the quotient, so ``lam`` and ``gamma``
    mean the same in both (with ``gamma = 1``: ``lam E[max(0, q - 1)^2]``). It needs the
    critic's values only, so its backward is a single one (no input gradient, no double
    backward), and with ``pairs="real-fake"`` and the scores of the loss passed in as
    ``d_real`` / ``d_fake`` it runs no extra forward pass either.

    Pairs (``pairs``), each ``[B, ...]`` with ``real`` and ``fake`` paired by index:

    - ``"real-fake"``: ``(real_i, fake_i)``;
    - ``"real-interpolate"``: ``(real_i, eps real_i + (1 - eps) fake_i)``, ``eps ~ U[0, 1]``;
    - ``"interpolates"``: two independent interpolates on the segment ``[real_i, fake_i]``
      (local quotients near the data, closest to the gradient penalty);
    - a callable ``(real, fake) -> (x, y)`` for any other pairing.

    Points are detached; distances ``||x_i - y_i||_B`` are computed without gradient, in
    float32 at least. Pairs at distance 0 have no quotient and are left out of the mean
    (a call where every pair has distance 0 returns 0).

    ``lam="auto"`` / ``gamma="auto"``: ``lam = E||X||_B``, ``gamma = E||X||_{B*}`` over real
    data, exactly as in :class:`lipreg.BanachGP` (running means in ``state_dict``,
    :meth:`calibrate`). Local norms (:class:`lipreg.norms.Wasserstein2`) are refused: they
    measure tangent vectors at a point, not differences of points.

    Args:
        norm: the norm of ``B`` (a :class:`lipreg.Norm` or a text spec).
        lam: ``"auto"`` or a fixed ``lam >= 0``.
        gamma: ``"auto"`` or a fixed ``gamma > 0``.
        pairs: the pairs ``(x, y)`` (see above).
        one_sided: penalise only quotients above gamma (default, as in the CT-GAN / LP-GAN
            family); ``False`` penalises ``(q / gamma - 1)^2`` in both directions.
        check_finite: raise if an input (``real``, ``fake``, the pairs, ``d_real``,
            ``d_fake``), a quotient, an estimate or the returned penalty is NaN or inf (one
            host synchronisation per call).

    Shapes:
        ``critic(x, **critic_kwargs)``: ``[B, ...] -> [B]`` or ``[B, 1]``; ``real``, ``fake``:
        ``[B, ...]``; ``d_real``, ``d_fake``: the critic's scores on them, ``[B]`` or
        ``[B, 1]``; returns a 0-dim tensor.
    """

    def __init__(
        self,
        norm: Norm | str = "l2",
        lam: Setting = 10.0,
        gamma: Setting = 1.0,
        pairs: str | PairSampler = "real-fake",
        one_sided: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__(norm)
        if self.norm.local:
            raise ValueError(
                f"FiniteDifferenceGP needs a norm of differences of points; {self.norm!r} is a "
                "local norm of tangent vectors at a base point: use BanachGP with it instead"
            )
        if isinstance(pairs, str) and pairs not in PAIRS:
            raise ValueError(
                f"pairs must be one of {list(PAIRS)} or a callable (real, fake) -> (x, y), "
                f"got {pairs!r}"
            )
        if not isinstance(pairs, str) and not callable(pairs):
            raise TypeError(
                "pairs must be a name or a callable (real, fake) -> (x, y), "
                f"got {type(pairs).__name__}"
            )
        self.calibration = Calibration(lam, gamma)
        self.pairs = pairs
        self.one_sided = check_bool(one_sided, "one_sided")
        self.check_finite = check_bool(check_finite, "check_finite")
        self.stats: FiniteDifferenceStats | None = None

    def _pair_scores(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor | None,
        d_real: Tensor | None,
        d_fake: Tensor | None,
        critic_kwargs: dict[str, Any],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Points ``x``, ``y`` (detached) and the critic's scores on them, ``[B]`` each;
        ``d_real``, ``d_fake`` are checked ``[B]`` scores or None."""
        batch = real.shape[0]

        def scores(points: Tensor, given: Tensor | None) -> Tensor:
            if given is not None:
                return given
            return call_critic(critic, points, critic_kwargs)

        real = real.detach()
        fake = None if fake is None else fake.detach()
        if isinstance(self.pairs, str):
            if fake is None:
                raise TypeError(
                    f"pairs={self.pairs!r} needs fake samples: call penalty(critic, real, fake)"
                )
            if fake.shape[0] != batch:
                raise ValueError(
                    f"pairs={self.pairs!r} pairs real[i] with fake[i], but real has {batch} "
                    f"samples and fake {fake.shape[0]}; pass equally sized batches"
                )
        if self.pairs == "real-fake":
            assert fake is not None
            return real, fake, scores(real, d_real), scores(fake, d_fake)
        if self.pairs == "real-interpolate":
            y = interpolate(real, fake)
            return real, y, scores(real, d_real), scores(y, None)
        if self.pairs == "interpolates":
            x, y = interpolate(real, fake), interpolate(real, fake)
        else:
            assert callable(self.pairs)
            out = self.pairs(real, fake)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(
                    f"the pairs callable {describe(self.pairs)} must return a tuple (x, y) of "
                    f"two tensors [B, ...], got {described(out)}"
                )
            who = f"the pairs callable {describe(self.pairs)}"
            x, y = (check_points(t, real, f"{who}'s {n}") for n, t in zip("xy", out, strict=True))
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{who} must return x and y with as many points each, got "
                    f"{x.shape[0]} and {y.shape[0]}"
                )
            x, y = x.detach(), y.detach()
        return x, y, scores(x, None), scores(y, None)

    def forward(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor | None = None,
        *,
        d_real: Tensor | None = None,
        d_fake: Tensor | None = None,
        **critic_kwargs: Any,
    ) -> Tensor:
        """The penalty ``lam * gamma * E[max(0, q(x, y) / gamma - 1)^2]``, a 0-dim tensor.

        Args:
            critic: ``critic(x, **critic_kwargs)`` giving scores ``[B]`` or ``[B, 1]``.
            real: real batch ``[B, ...]``; also the data of the ``"auto"`` estimates.
            fake: generated batch ``[B, ...]``.
            d_real: optional ``critic(real)`` already computed for the loss (still attached to
                the critic's parameters); used instead of a new forward pass where a pair
                takes a real point as it is. Pass scores of ``real`` exactly.
            d_fake: the same for ``fake`` (used by ``pairs="real-fake"``).
            critic_kwargs: passed to the critic unchanged (e.g. class labels) on each of
                ``x`` and ``y`` (separate forward passes of ``B`` points each).
        """
        self._check_inputs(critic, real, fake)
        batch = real.shape[0]
        if d_real is not None:
            d_real = check_scores(d_real, batch, "d_real", "pass critic(real) of this batch")
        if d_fake is not None:
            d_fake = check_scores(d_fake, batch, "d_fake", "pass critic(fake) of this batch")
        estimate = self._estimate(real)
        x, y, d_x, d_y = self._pair_scores(critic, real, fake, d_real, d_fake, critic_kwargs)
        with torch.autocast(real.device.type, enabled=False):
            with torch.no_grad():
                distance = self.norm.norm(x - y)
            valid = distance > 0
            safe = torch.where(valid, distance, torch.ones_like(distance))
            quotient = (upcast(d_x) - upcast(d_y)).abs() / safe
            lam, gamma = estimate.lam, estimate.gamma
            excess = quotient / gamma - 1
            if self.one_sided:
                excess = excess.clamp_min(0)
            terms = torch.where(valid, excess.square(), torch.zeros_like(excess))
            count = valid.sum().clamp_min(1)
            penalty = lam * gamma * terms.sum() / count
        if self._checks_finite:
            inputs = {"real": real, "fake": fake, "d_real": d_real, "d_fake": d_fake}
            if not isinstance(self.pairs, str):  # points that are not real's or fake's
                inputs |= {"the pairs' x": x, "the pairs' y": y}
            raise_if_not_finite(penalty, quotient, "difference quotients", inputs, estimate.means)
        self.calibration.commit(estimate)
        with torch.no_grad():
            q = torch.where(valid, quotient.detach(), torch.zeros_like(quotient))
            self.stats = FiniteDifferenceStats(
                penalty=penalty.detach(),
                quotient_mean=q.sum() / count,
                quotient_max=q.max(),
                frac_above_gamma=((q > gamma) & valid).sum() / count,
                lam=torch.as_tensor(lam, dtype=q.dtype, device=q.device).detach(),
                gamma=torch.as_tensor(gamma, dtype=q.dtype, device=q.device).detach(),
            )
        return penalty

    def extra_repr(self) -> str:
        pairs = self.pairs if isinstance(self.pairs, str) else getattr(self.pairs, "__name__", "?")
        return f"norm={self.norm!r}, pairs={pairs!r}, one_sided={self.one_sided}"
