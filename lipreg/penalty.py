"""Gradient penalties: their shared machinery, and BanachGP (Banach Wasserstein GAN).

:class:`GradientPenalty` is what every gradient penalty of lipreg has in common: points from a
sampler, the critic's input gradient there, and its dual norm ``||dD(x_hat)||_{B*}`` (at the
base point ``x_hat`` for local norms), with the input checks, the finiteness check and the
checkpoint rules. :class:`BanachGP` and the zero-centred :class:`lipreg.BanachR1` /
:class:`lipreg.BanachR2` differ only in what they make of those dual norms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor
from typing_extensions import Self

from lipreg._state import CheckedState
from lipreg._validation import check_batch, check_bool, check_critic, check_points
from lipreg._validation import check_pair as _check_pair
from lipreg.calibration import Calibration, Estimate, Setting
from lipreg.derivative import Critic, Engine, check_options, describe, input_gradient
from lipreg.norms import Norm, parse_norm
from lipreg.sampling import SAMPLERS, Sampler, resolve_sampler


@dataclass(frozen=True)
class Stats:
    """Detached statistics of one penalty call, as 0-dim tensors (no host synchronisation
    until read; :meth:`as_dict` reads them all)."""

    def as_dict(self) -> dict[str, float]:
        """All statistics as Python floats, e.g. for a logger."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class PenaltyStats(Stats):
    """Statistics of a :class:`BanachGP` call."""

    penalty: Tensor  #: the returned value
    dual_norm_mean: Tensor  #: mean of ||dD(x_hat)||_{B*} over the evaluation points
    dual_norm_max: Tensor  #: its maximum
    frac_above_gamma: Tensor  #: share of evaluation points with ||dD(x_hat)||_{B*} > gamma
    lam: Tensor
    gamma: Tensor


def check_pair(real: Tensor, fake: Tensor | None) -> None:
    """Raise unless ``real`` (and ``fake`` if given) are batches ``[B, ...]`` with the same
    per-sample shape, dtype and device, holding values (not on the meta device)."""
    check_batch(real, "real")
    if fake is not None:
        _check_pair(real, fake, "real", "fake")
    if real.device.type == "meta":
        raise ValueError(
            "real is on the meta device, which holds shapes but no values: a penalty needs "
            "the data (and its running estimates must not move there); pass real tensors"
        )


def raise_if_not_finite(
    penalty: Tensor,
    terms: Tensor,
    what: str,
    inputs: Mapping[str, Tensor | None],
    means: Tensor | None = None,
    advice: str = "",
) -> None:
    """Raise ``ValueError`` unless the returned ``penalty``, its per-point ``terms`` (``what``
    names them: dual gradient norms, quotients), the running estimates ``means`` and every
    given input are finite, with one host synchronisation.
    """
    given = {name: t for name, t in inputs.items() if t is not None}
    parts = [penalty, terms, *([] if means is None else [means]), *given.values()]
    if bool(torch.stack([torch.isfinite(t).all() for t in parts]).all()):
        return
    # Only a failing call pays for the diagnosis.
    problems = [
        f"{name} contains NaN or inf" for name, t in given.items() if not t.isfinite().all()
    ]
    bad = int((~torch.isfinite(terms)).sum())
    if bad:
        problems.append(f"{bad} of {terms.numel()} {what} are NaN or inf")
    if means is not None and not bool(torch.isfinite(means).all()):
        problems.append(f"the estimates (||X||_B, ||X||_B*) = {means.tolist()} are NaN or inf")
    if not problems:
        problems.append(
            f"the penalty is {penalty.item()} although its {what} are finite: they reach "
            f"{terms.detach().abs().max().item():.3g}, too large for {penalty.dtype}"
        )
    raise ValueError(
        f"non-finite values in the penalty: {'; '.join(problems)}. The critic or the data "
        f"diverged or contain NaN/inf: lower the learning rate, check the inputs{advice}"
    )


class NormPenalty(CheckedState):
    """A penalty module defined with a norm of ``B``: its checkpoint records the norm's spec,
    and loading it into a penalty with another norm is refused before anything is loaded
    (running estimates of ``E||X||_B`` are meaningless under another norm).

    Args:
        norm: a :class:`lipreg.Norm` or a text spec (see :func:`lipreg.parse_norm`).
    """

    check_finite: bool  #: set by subclasses: raise on NaN or inf

    def __init__(self, norm: Norm | str) -> None:
        super().__init__()
        self.norm = parse_norm(norm)

    @property
    def _checks_finite(self) -> bool:
        """Whether a call raises on non-finite values (see :func:`raise_if_not_finite`)."""
        return self.check_finite

    def _check_inputs(self, critic: object, real: Tensor, fake: Tensor | None) -> None:
        check_critic(critic)
        check_pair(real, fake)
        self.norm.check(real, "real")

    def get_extra_state(self) -> dict[str, str]:
        return {"norm": self.norm.spec}

    def set_extra_state(self, state: Any) -> None:
        """Nothing to restore: the norm comes from the constructor (checked on load)."""

    def _state_problems(self, state_dict: dict[str, Any], prefix: str) -> list[str]:
        # Estimates of E||X||_B are meaningless under another norm.
        saved = state_dict.get(prefix + "_extra_state")
        if saved is None or (isinstance(saved, dict) and saved.get("norm") == self.norm.spec):
            return []
        if not (isinstance(saved, dict) and isinstance(saved.get("norm"), str)):
            return [
                f"{prefix}_extra_state: expected {{'norm': spec}} with the norm's text spec, "
                f"got {saved!r}"
            ]
        return [
            f"it was saved for norm {saved['norm']!r}, but the penalty uses "
            f"{self.norm.spec!r}; build the penalty with the same norm"
        ]


class GradientPenalty(NormPenalty):
    """Base of lipreg's gradient penalties: sampler, input gradient, dual norm.

    Subclasses implement ``forward(critic, real, fake=None, **critic_kwargs)`` from
    :meth:`_evaluation_points` and :meth:`_dual_norms`, and set their ``stats`` (a
    :class:`Stats`) once a call has succeeded. Checkpoints: see :class:`NormPenalty`.

    The constructor arguments (``norm``, ``sampling``, ``per_sample``, ``engine``,
    ``chunk_size``, ``grad_scaler``, ``check_finite``) are those of :class:`BanachGP`.
    """

    def __init__(
        self,
        norm: Norm | str,
        sampling: str | Sampler,
        per_sample: bool,
        engine: Engine,
        chunk_size: int | None,
        grad_scaler: torch.amp.GradScaler | None,
        check_finite: bool,
    ) -> None:
        super().__init__(norm)
        self.sampler = resolve_sampler(sampling)
        check_options(engine, chunk_size, per_sample, grad_scaler)
        self.per_sample = per_sample
        self.engine: Engine = engine
        self.chunk_size = chunk_size
        self.grad_scaler = grad_scaler
        self.check_finite = check_bool(check_finite, "check_finite")

    def _evaluation_points(self, real: Tensor, fake: Tensor | None) -> Tensor:
        """``x_hat = sampler(real, fake)`` from detached inputs, checked against ``real``."""
        x_hat = self.sampler(real.detach(), None if fake is None else fake.detach())
        return check_points(x_hat, real, f"the output of the sampler {describe(self.sampler)}")

    def _input_gradient(
        self, critic: Critic, x_hat: Tensor, critic_kwargs: dict[str, Any]
    ) -> Tensor:
        return input_gradient(
            critic,
            x_hat,
            critic_kwargs=critic_kwargs,
            per_sample=self.per_sample,
            engine=self.engine,
            grad_scaler=self.grad_scaler,
            chunk_size=self.chunk_size,
        )

    def _dual_norms(
        self, critic: Critic, x_hat: Tensor, critic_kwargs: dict[str, Any], *, squared: bool
    ) -> Tensor:
        """``||dD(x_hat_b)||_{B*}`` (or its square) for every point, ``[B]``, float32 at least,
        differentiable in the critic's parameters; computed with autocast off."""
        g = self._input_gradient(critic, x_hat, critic_kwargs)
        with torch.autocast(x_hat.device.type, enabled=False):
            if squared:
                return self.norm.dual_squared(g, at=x_hat)
            return self.norm.dual(g, at=x_hat)

    @property
    def _scaler_active(self) -> bool:
        return self.grad_scaler is not None and self.grad_scaler.is_enabled()

    @property
    def _checks_finite(self) -> bool:
        # An active GradScaler skips the steps with non-finite gradients itself.
        return self.check_finite and not self._scaler_active

    def _raise_if_not_finite(
        self,
        penalty: Tensor,
        dual: Tensor,
        what: str,
        inputs: Mapping[str, Tensor | None],
        means: Tensor | None = None,
    ) -> None:
        """Raise if the penalty, ``dual`` (its dual norms, ``what`` says which), the estimates
        ``means`` or the ``inputs`` are not all finite, when checking."""
        if self._checks_finite:
            raise_if_not_finite(
                penalty,
                dual,
                what,
                inputs,
                means,
                advice=", and under float16 autocast pass grad_scaler=your GradScaler",
            )

    def extra_repr(self) -> str:
        sampling = next((k for k, v in SAMPLERS.items() if v is self.sampler), self.sampler)
        return (
            f"norm={self.norm!r}, sampling={sampling!r}, per_sample={self.per_sample}, "
            f"engine={self.engine!r}"
        )


class Calibrated:
    """``lam`` / ``gamma`` of a penalty that holds a :class:`lipreg.Calibration` in
    ``self.calibration`` and a norm in ``self.norm``: the current values and
    :meth:`calibrate`. A mixin of :class:`BanachGP` and :class:`lipreg.FiniteDifferenceGP`."""

    calibration: Calibration
    norm: Norm

    def _current(self, index: int, name: str) -> float:
        setting = (self.calibration.lam_setting, self.calibration.gamma_setting)[index]
        if setting != "auto":
            return setting
        if int(self.calibration.count) == 0:
            raise RuntimeError(
                f"{name}='auto' has no estimate yet: call the penalty on a training batch "
                "or run penalty.calibrate(batches) first"
            )
        return float(self.calibration.means[index])

    def _estimate(self, real: Tensor) -> Estimate:
        """This call's lam/gamma (and running means, not yet committed) with ``real`` in them,
        computed on ``real``'s device in float32 at least."""
        with torch.autocast(real.device.type, enabled=False):
            return self.calibration.estimate(real, self.norm)

    @property
    def lam(self) -> float:
        """The current lam: the fixed value or the running estimate ``E||X||_B``."""
        return self._current(0, "lam")

    @property
    def gamma(self) -> float:
        """The current gamma: the fixed value or the running estimate ``E||X||_{B*}``."""
        return self._current(1, "gamma")

    def calibrate(
        self, batches: Iterable[Any], *, max_batches: int | None = None, freeze: bool = True
    ) -> Self:
        """Estimate ``lam = E||X||_B`` / ``gamma = E||X||_{B*}`` (those set to ``"auto"``) from
        real ``batches`` up front: tensors ``[B, ...]`` or tuples whose first element is one,
        as a ``DataLoader`` yields. With ``freeze`` the estimates then stay fixed during
        training. Averaged across processes under ``torch.distributed``. Returns ``self``.
        """
        self.calibration.calibrate(batches, self.norm, max_batches=max_batches, freeze=freeze)
        return self


class BanachGP(GradientPenalty, Calibrated):
    """Gradient penalty of Banach Wasserstein GAN (Adler & Lunz, NeurIPS 2018).

    The paper's critic loss (eq. 9) for a Banach space ``B`` is

        L = (1/gamma) (E D(fake) - E D(real)) + lam E[(||dD(x_hat)||_{B*} / gamma - 1)^2],

    ``D`` being gamma-Lipschitz in ``B`` iff ``||dD(x)||_{B*} <= gamma`` everywhere (Lemma 1).
    A call returns the scalar

        penalty = lam * gamma * E[(||dD(x_hat)||_{B*} / gamma - 1)^2],

    so that ``d_fake.mean() - d_real.mean() + penalty(critic, real, fake)`` equals
    ``gamma * L``: the same minimisers and a loss scale independent of the norm. With
    ``L2()``, ``lam=10`` and ``gamma=1`` this is WGAN-GP exactly,
    ``10 E[(||grad D(x_hat)||_2 - 1)^2]``. With ``one_sided=True`` the square is of
    ``max(0, ||dD(x_hat)||_{B*} / gamma - 1)`` (WGAN-LP, Petzka et al. 2018).

    ``x_hat`` comes from ``sampling``: ``"interpolate"`` (``eps real + (1 - eps) fake``,
    ``eps ~ U[0, 1]`` per sample), ``"real"``, ``"fake"``, ``"dragan"`` / ``"dragan_interpolate"``
    (real points plus noise, see :func:`lipreg.sampling.dragan`) or any callable
    ``(real, fake) -> x_hat``.
    ``real`` and ``fake`` are detached first: the penalty trains the critic's parameters only.
    The input gradient comes from :func:`lipreg.input_gradient` (``torch.func``),
    differentiable in the critic's parameters; its dual norm is computed in float32 with
    autocast off, at the base point ``x_hat`` for local norms
    (:class:`lipreg.norms.Wasserstein2`).

    ``lam="auto"`` / ``gamma="auto"`` follow the paper: ``lam = E||X||_B`` and
    ``gamma = E||X||_{B*}`` over real data, as running means over the real batches of
    training-mode calls (see :class:`lipreg.Calibration`), or computed up front with
    :meth:`calibrate`. They are averaged across processes under ``torch.distributed`` and
    saved in ``state_dict``. They need a norm of the whole space, so local norms take fixed
    values. The module follows the device of its inputs.

    A call that raises changes nothing: running estimates and :attr:`stats` are only
    updated once the penalty has been computed and checked.

    Args:
        norm: the norm of ``B``: a :class:`lipreg.Norm` or a text spec (``"l2"``,
            ``"lp:p=10"``, ``"sobolev:s=-1.5"``; see :func:`lipreg.parse_norm`).
        lam: ``"auto"`` or a fixed ``lam >= 0``.
        gamma: ``"auto"`` or a fixed ``gamma > 0``.
        sampling: where the derivative is penalised (see above).
        one_sided: penalise only dual norms above gamma.
        per_sample: derivative of the i-th output in the i-th input with the rest of the
            batch fixed, for critics that couple samples (batch statistics, minibatch
            stddev); about ``B`` times the cost. Default: one batched vjp, exact for critics
            whose samples do not interact.
        engine: ``"func"`` (``torch.func``) or ``"autograd"``, for critics ``torch.func``
            cannot transform (see :func:`lipreg.input_gradient`).
        chunk_size: one-hot cotangents per vmap chunk with ``per_sample`` (bounds memory).
        grad_scaler: a ``torch.amp.GradScaler`` used for this critic's loss under float16
            autocast: the input gradient is then taken of the scaled output and unscaled
            before the norm, and non-finite values are left to the scaler to skip.
        check_finite: raise if ``real``, ``fake``, a dual norm, an estimate or the returned
            penalty is NaN or inf (one host synchronisation per call; skipped when a
            GradScaler is active).

    Shapes:
        ``critic(x, **critic_kwargs)``: ``[B, ...] -> [B]`` or ``[B, 1]``;
        ``real``, ``fake``: ``[B, ...]`` with the same per-sample shape, dtype and device;
        returns a 0-dim tensor.
    """

    def __init__(
        self,
        norm: Norm | str = "l2",
        lam: Setting = 10.0,
        gamma: Setting = 1.0,
        sampling: str | Sampler = "interpolate",
        one_sided: bool = False,
        per_sample: bool = False,
        engine: Engine = "func",
        chunk_size: int | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__(norm, sampling, per_sample, engine, chunk_size, grad_scaler, check_finite)
        self.calibration = Calibration(lam, gamma)
        if self.norm.local and self.calibration.auto:
            raise ValueError(
                f"lam='auto' and gamma='auto' estimate E||X||_B and E||X||_B* over real data, "
                f"which a local norm ({self.norm!r}) does not define: pass fixed values, e.g. "
                "lam=10.0, gamma=1.0"
            )
        self.one_sided = check_bool(one_sided, "one_sided")
        self.stats: PenaltyStats | None = None

    def forward(
        self, critic: Critic, real: Tensor, fake: Tensor | None = None, **critic_kwargs: Any
    ) -> Tensor:
        """The penalty ``lam * gamma * E[(||dD(x_hat)||_{B*} / gamma - 1)^2]``, a 0-dim tensor.

        Args:
            critic: ``critic(x, **critic_kwargs)`` giving scores ``[B]`` or ``[B, 1]``.
            real: real batch ``[B, ...]``; also the data of the ``"auto"`` estimates.
            fake: generated batch ``[B, ...]`` (needed by ``"interpolate"`` and ``"fake"``).
            critic_kwargs: passed to the critic unchanged (e.g. class labels).
        """
        self._check_inputs(critic, real, fake)
        x_hat = self._evaluation_points(real, fake)
        estimate = self._estimate(real)
        dual = self._dual_norms(critic, x_hat, critic_kwargs, squared=False)
        with torch.autocast(real.device.type, enabled=False):
            lam, gamma = estimate.lam, estimate.gamma
            excess = dual / gamma - 1
            if self.one_sided:
                excess = excess.clamp_min(0)
            penalty = lam * gamma * excess.square().mean()
        self._raise_if_not_finite(
            penalty, dual, "dual gradient norms", {"real": real, "fake": fake}, estimate.means
        )
        self.calibration.commit(estimate)
        with torch.no_grad():
            self.stats = PenaltyStats(
                penalty=penalty.detach(),
                dual_norm_mean=dual.detach().mean(),
                dual_norm_max=dual.detach().max(),
                frac_above_gamma=(dual.detach() > gamma).float().mean(),
                lam=torch.as_tensor(lam, dtype=dual.dtype, device=dual.device).detach(),
                gamma=torch.as_tensor(gamma, dtype=dual.dtype, device=dual.device).detach(),
            )
        return penalty

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, one_sided={self.one_sided}"
