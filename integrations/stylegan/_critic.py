"""The discriminator's terms on real data: its loss and the Banach regulariser, in the one
backward pass the hosts make of them, reporting what the hosts report."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from lipreg import BanachGP, BanachR1, input_gradient

from .._outputs import r1_squares
from ._networks import HostNetworks, backward


class _Recorded:
    """A critic that remembers its last output.

    The hosts evaluate ``D`` on the real batch once, for both the loss and the regulariser
    (and ADA's augmentation draws its randomness in that one evaluation). lipreg's penalties
    run the critic themselves to take its input gradient, so the loss reuses the output of
    that evaluation. This needs ``engine="autograd"``: under ``torch.func`` the output seen
    inside the critic is a transform-internal tensor that must not escape.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn
        self.output: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        self.output = self.fn(x)
        return self.output

    def last(self) -> Tensor:
        if self.output is None:
            raise RuntimeError("the penalty did not evaluate the discriminator")
        return self.output


class CriticTerms(HostNetworks):
    """``Dmain``'s real-data loss and ``Dreg``'s regulariser (a mixin of
    :class:`~lipreg.integrations.stylegan.BanachLoss`, which sets ``penalty``)."""

    penalty: BanachR1 | BanachGP

    def _report_penalty(self) -> None:
        stats = self.penalty.stats
        assert stats is not None
        for field in dataclasses.fields(stats):
            self._report(f"Loss/lipreg/{field.name}", getattr(stats, field.name))

    def _r1(self, critic: _Recorded, real: Tensor) -> tuple[Tensor, Tensor]:
        """R1 at the reals per sample, ``(gamma / 2) ||dD(x_b)||_{B*}^2`` ``[B]``, and the
        ``||dD(x_b)||_{B*}^2`` ``[B]`` the hosts report (not their mean: the count and spread
        are in the host's ``stats.jsonl``). The penalty's statistics and finiteness check are
        those of its batch mean; the loss adds the per-sample terms to the per-sample loss
        before the mean, as the hosts do, which keeps float32 rounding the hosts' for any
        batch size (a mean first differs in the last bit when B is not a power of two)."""
        assert isinstance(self.penalty, BanachR1)
        self.penalty.norm.check(real, "real_img")
        with self.host.no_weight_gradients():
            g = input_gradient(
                critic,
                real,
                per_sample=self.penalty.per_sample,
                engine="autograd",
                chunk_size=self.penalty.chunk_size,
            )
        squared = r1_squares(self.penalty, g, real)
        return squared * (self.penalty.gamma / 2), squared

    def _real_and_reg(
        self,
        real_img: Tensor,
        real_c: Tensor,
        gen_z: Tensor,
        gen_c: Tensor,
        fake: Tensor | None,
        loss_Dgen: Tensor | float,
        do_Dmain: bool,
        do_Dreg: bool,
        sync: bool,
        gain: float,
        blur: float,
    ) -> None:
        """The real-data loss and the regulariser, in one backward pass (the synced one)."""
        wgan = isinstance(self.penalty, BanachGP)
        real = real_img.detach()

        def critic_at(c: Tensor, sync_: bool) -> _Recorded:
            return _Recorded(lambda x: self.run_D(x, c, sync_, blur, update_emas=False))

        reg: Tensor | float = 0.0
        r1: Tensor | None = None  # per sample
        outputs: list[Tensor] = []
        real_logits: Tensor | None = None
        if do_Dreg and not wgan:
            # R1 is taken at the reals: one evaluation of D serves both the loss and R1.
            critic = critic_at(real_c, sync)
            reg, r1 = self._r1(critic, real)
            real_logits = critic.last()
        elif do_Dmain:
            real_logits = self.run_D(real, real_c, sync and not do_Dreg, blur, update_emas=False)
        if real_logits is not None:
            outputs.append(real_logits)
            self._report("Loss/scores/real", real_logits)
            self._report("Loss/signs/real", real_logits.sign())
        loss_Dreal: Tensor | float = 0.0
        if do_Dmain:
            assert real_logits is not None
            loss_Dreal = -real_logits if wgan else F.softplus(-real_logits)
            self._report("Loss/D/loss", torch.as_tensor(loss_Dgen + loss_Dreal))
        if do_Dreg and wgan:
            if fake is None:
                with torch.no_grad():
                    fake, _ = self.run_G(gen_z, gen_c, sync=False, update_emas=False)
            critic = critic_at(real_c, sync)
            with self.host.no_weight_gradients():
                reg = self.penalty(critic, real, fake)
            outputs.append(critic.last())
        if r1 is not None:
            assert isinstance(reg, Tensor)
            self._report("Loss/r1_penalty", r1.detach())
            self._report("Loss/D/reg", reg.detach())
        elif do_Dreg:
            assert isinstance(reg, Tensor)
            self._report("Loss/D/reg", reg.detach())  # no host counterpart: the batch value
        if do_Dreg:
            self._report_penalty()
        terms = [t for t in (loss_Dreal, reg) if isinstance(t, Tensor)]
        if self.protocol == "ada":
            # ADA's DDP needs every discriminator parameter in the graph of the synced backward.
            terms = [out * 0 for out in outputs] + terms
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        backward(total, gain)
