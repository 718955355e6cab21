"""``BanachLoss``: StyleGAN2's loss with its R1 measured in any norm, or Banach WGAN-GP.

NVlabs' StyleGAN2-ADA and StyleGAN3 build their loss by name from ``loss_kwargs``; this class
accepts either codebase's constructor arguments and ``accumulate_gradients`` call and keeps
the host's loss protocol (phases, gains, DDP sync, style mixing, path-length
regularisation, blur, augmentation), replacing only the discriminator's regulariser.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lipreg import BanachGP, BanachR1
from lipreg._validation import check_real
from lipreg.calibration import Setting
from lipreg.norms import Norm

from ._host import Host, load_host

Protocol: TypeAlias = Literal["ada", "sg3"]

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")
#: Name under which the penalty is attached to the discriminator, so that the hosts'
#: snapshot pickles (which save ``D``) carry its state.
ATTRIBUTE = "lipreg_penalty"

# The hosts' defaults differ (StyleGAN2-ADA's loss mixes styles and regularises path
# lengths unless told otherwise; StyleGAN3's does neither).
_DEFAULTS: dict[Protocol, dict[str, float]] = {
    "ada": {"style_mixing_prob": 0.9, "pl_weight": 2.0},
    "sg3": {"style_mixing_prob": 0.0, "pl_weight": 0.0},
}


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


def _module(value: object, name: str) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {type(value).__name__}")
    return value


def _backward(loss: Tensor, gain: float) -> None:
    """Accumulate ``gain * mean(loss)`` into the parameters' gradients (the hosts' step)."""
    torch.autograd.backward(loss.mean().mul(gain))


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper."""
    inner = getattr(module, "module", None)
    if isinstance(module, nn.parallel.DistributedDataParallel) and isinstance(inner, nn.Module):
        return inner
    return module


class BanachLoss:
    """StyleGAN2's loss with a Banach-space regulariser for the discriminator.

    ``penalty="r1"`` (default): StyleGAN2's non-saturating logistic losses with the
    zero-centred R1 ``(gamma / 2) E ||dD(x_real)||_{B*}^2`` (:class:`lipreg.BanachR1`), the
    dual norm of ``B = norm`` replacing the Euclidean one; ``gamma`` defaults to the host's
    ``r1_gamma``. With ``norm="l2"`` this is the host's ``StyleGAN2Loss``: same losses, same
    gradients, same statistics, on the same inputs and seeds.

    ``penalty="gp"``: the Wasserstein losses ``E D(fake) - E D(real)`` (critic) and
    ``-E D(fake)`` (generator) with :class:`lipreg.BanachGP` on interpolates,
    ``lam * gamma * E[(||dD(x_hat)||_{B*} / gamma - 1)^2]`` (``lam``, ``gamma``: numbers or
    ``"auto"``; default 10 and 1); conditional critics see the real labels at interpolates.

    Everything else is the host's: generator loss, path-length regularisation, style mixing,
    blur of the discriminator's inputs (StyleGAN3), augmentation inside the regulariser's
    graph, lazy regularisation (phases ``Dreg``/``Greg`` called with ``gain`` = interval),
    DDP sync contexts and ``conv2d_gradfix.no_weight_gradients`` (StyleGAN2-ADA), statistics
    through the host's ``training_stats`` (the host's names, plus ``Loss/lipreg/<stat>``
    from the penalty's ``stats``). The regularising phases run when ``gamma != 0`` (r1) or
    ``lam != 0`` (gp), as the host's run when ``r1_gamma != 0``.

    Which host is calling is told by its arguments: ``G_mapping`` and ``G_synthesis`` for
    StyleGAN2-ADA, ``G`` for StyleGAN3. The penalty is an ``nn.Module`` (:attr:`penalty`)
    attached to the discriminator as ``D.lipreg_penalty`` so the host's snapshot pickles
    save its state; ``resume_pkl`` restores it from such a snapshot (the hosts copy only
    parameters and buffers of modules that exist before the loss is built).

    Args:
        device: the host's device (the networks' device).
        D: the discriminator ``D(img, c)`` (StyleGAN3 also passes ``update_emas``).
        G_mapping, G_synthesis: StyleGAN2-ADA's generator halves (possibly DDP-wrapped).
        G: StyleGAN3's generator (``G.mapping``, ``G.synthesis``).
        augment_pipe: the host's augmentation module or None.
        r1_gamma: the host's R1 weight; the default of ``gamma`` for ``penalty="r1"``.
        style_mixing_prob: as in the host.
        pl_weight: as in the host.
        pl_batch_shrink: as in the host.
        pl_decay: as in the host.
        pl_no_weight_grad: as in the host (StyleGAN3 only).
        blur_init_sigma: as in the host (StyleGAN3 only).
        blur_fade_kimg: as in the host (StyleGAN3 only).
        norm: the norm of ``B``: a :class:`lipreg.Norm` or a spec like ``"sobolev:s=-1.5"``.
        penalty: ``"r1"`` or ``"gp"``.
        lam: BanachGP's ``lam`` (``penalty="gp"`` only).
        gamma: R1's weight (``"r1"``), or BanachGP's Lipschitz constant (``"gp"``).
        per_sample: derivative of ``D(x)_i`` in ``x_i`` alone: the minibatch-stddev layer
            couples samples, see the docs for how much this changes R1 (about B times the cost).
        engine: lipreg's derivative engine; only ``"autograd"`` (the hosts' custom ops are
            old-style ``autograd.Function``\\ s that ``torch.func`` rejects on CUDA, and the
            real logits are shared between loss and R1, see ``_Recorded``).
        attach_to_D: attach the penalty to ``D`` for the snapshot pickles.
        resume_pkl: a snapshot pickle to restore the penalty's state from.
    """

    def __init__(
        self,
        device: torch.device | str,
        D: nn.Module,
        G_mapping: nn.Module | None = None,
        G_synthesis: nn.Module | None = None,
        G: nn.Module | None = None,
        augment_pipe: nn.Module | None = None,
        r1_gamma: float = 10.0,
        style_mixing_prob: float | None = None,
        pl_weight: float | None = None,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        pl_no_weight_grad: bool = False,
        blur_init_sigma: float = 0.0,
        blur_fade_kimg: float = 0.0,
        *,
        norm: Norm | str = "l2",
        penalty: str = "r1",
        lam: Setting | None = None,
        gamma: Setting | None = None,
        per_sample: bool = False,
        engine: str = "autograd",
        attach_to_D: bool = True,
        resume_pkl: str | None = None,
    ) -> None:
        self.protocol = self._protocol(G_mapping, G_synthesis, G, blur_init_sigma, blur_fade_kimg)
        if self.protocol == "ada":
            mapping, synthesis = (
                _module(G_mapping, "G_mapping"),
                _module(G_synthesis, "G_synthesis"),
            )
        else:
            mapping = _module(getattr(G, "mapping", None), "G.mapping")
            synthesis = _module(getattr(G, "synthesis", None), "G.synthesis")
        _module(D, "D")
        if penalty not in ("r1", "gp"):
            raise ValueError(
                f"penalty must be 'r1' (StyleGAN2's loss with R1 in the dual norm) or 'gp' "
                f"(Wasserstein loss with BanachGP), got {penalty!r}"
            )
        if engine != "autograd":
            raise ValueError(
                f"engine must be 'autograd' for the StyleGAN hosts, got {engine!r}: their custom "
                "ops are old-style autograd.Functions that torch.func rejects on CUDA, and the "
                "loss reuses the discriminator's output from the penalty's own evaluation"
            )
        self.penalty: BanachR1 | BanachGP
        if penalty == "r1":
            if lam is not None:
                raise ValueError(
                    f"lam applies to penalty='gp' only, got lam={lam!r} with penalty='r1'; R1's "
                    "weight is gamma (default: the host's r1_gamma)"
                )
            if isinstance(gamma, str):
                raise ValueError(
                    "gamma='auto' applies to penalty='gp' (Lipschitz constant E||X||_B*); with "
                    "penalty='r1' gamma is R1's weight: give a number or leave it to r1_gamma"
                )
            weight = r1_gamma if gamma is None else gamma
            self.penalty = BanachR1(norm, weight, per_sample=per_sample, engine="autograd")
        else:
            self.penalty = BanachGP(
                norm,
                lam=10.0 if lam is None else lam,
                gamma=1.0 if gamma is None else gamma,
                per_sample=per_sample,
                engine="autograd",
            )
        defaults = _DEFAULTS[self.protocol]
        self.style_mixing_prob = check_real(
            defaults["style_mixing_prob"] if style_mixing_prob is None else style_mixing_prob,
            "style_mixing_prob",
            0.0,
            1.0,
        )
        self.pl_weight = check_real(
            defaults["pl_weight"] if pl_weight is None else pl_weight, "pl_weight", 0, math.inf
        )
        if isinstance(pl_batch_shrink, bool) or not isinstance(pl_batch_shrink, int):
            raise TypeError(f"pl_batch_shrink must be a positive int, got {pl_batch_shrink!r}")
        if pl_batch_shrink < 1:
            raise ValueError(f"pl_batch_shrink must be a positive int, got {pl_batch_shrink!r}")
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = check_real(pl_decay, "pl_decay", 0.0, 1.0)
        self.pl_no_weight_grad = bool(pl_no_weight_grad)
        self.blur_init_sigma = check_real(blur_init_sigma, "blur_init_sigma", 0.0, math.inf)
        self.blur_fade_kimg = check_real(blur_fade_kimg, "blur_fade_kimg", 0.0, math.inf)
        saved = self._saved_penalty(resume_pkl) if resume_pkl is not None else None

        self.host: Host = load_host(self.protocol)
        if saved is not None:
            self.penalty.load_state_dict(saved)  # checked as a whole before anything loads
        self.device = torch.device(device)
        self.penalty.to(self.device)
        self.D = D
        self.augment_pipe = augment_pipe
        self.G_mapping, self.G_synthesis = mapping, synthesis
        self.pl_mean = torch.zeros([], device=self.device)
        if attach_to_D:
            _unwrap(D).add_module(ATTRIBUTE, self.penalty)

    @staticmethod
    def _protocol(
        G_mapping: object, G_synthesis: object, G: object, blur_sigma: float, blur_kimg: float
    ) -> Protocol:
        if G is not None and G_mapping is None and G_synthesis is None:
            return "sg3"
        if G is None and G_mapping is not None and G_synthesis is not None:
            if blur_sigma or blur_kimg:
                raise ValueError(
                    "blur_init_sigma/blur_fade_kimg are StyleGAN3 options (they need cur_nimg), "
                    "but G_mapping/G_synthesis identify StyleGAN2-ADA; leave them at 0"
                )
            return "ada"
        raise TypeError(
            "pass the generator as the host does: G (StyleGAN3) or G_mapping and G_synthesis "
            "(StyleGAN2-ADA), not both or neither"
        )

    @staticmethod
    def _saved_penalty(path: str) -> dict[str, Any]:
        with open(path, "rb") as f:
            snapshot = pickle.load(f)  # the host's own snapshot format
        D = snapshot.get("D") if isinstance(snapshot, dict) else None
        saved = getattr(D, ATTRIBUTE, None) if isinstance(D, nn.Module) else None
        if not isinstance(saved, nn.Module):
            raise ValueError(
                f"resume_pkl={path!r} holds no discriminator with a lipreg penalty (D.{ATTRIBUTE})"
                ": it was not written by a run with BanachLoss(attach_to_D=True); drop resume_pkl"
            )
        state: dict[str, Any] = saved.state_dict()
        return state

    # -- checkpoint helpers for loops that save the loss themselves ------------------------

    def state_dict(self) -> dict[str, Any]:
        """The penalty's ``state_dict`` and the path-length running mean."""
        return {"penalty": self.penalty.state_dict(), "pl_mean": self.pl_mean.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (the penalty's part is checked first)."""
        if set(state) != {"penalty", "pl_mean"}:
            raise KeyError(
                "expected the keys 'penalty' and 'pl_mean' of BanachLoss.state_dict(), "
                f"got {sorted(state)}"
            )
        pl_mean = torch.as_tensor(state["pl_mean"])
        if pl_mean.shape != ():
            raise ValueError(f"pl_mean must be a 0-dim tensor, got shape {list(pl_mean.shape)}")
        self.penalty.load_state_dict(state["penalty"])
        self.pl_mean.copy_(pl_mean)

    # -- the host's pieces -----------------------------------------------------------------

    def run_G(self, z: Tensor, c: Tensor, sync: bool, update_emas: bool) -> tuple[Tensor, Tensor]:
        """Images and their ws, with style mixing (probability ``style_mixing_prob``)."""
        ada = self.protocol == "ada"
        emas: dict[str, bool] = {} if ada else {"update_emas": update_emas}
        with self.host.ddp_sync(self.G_mapping, sync):
            ws: Tensor = self.G_mapping(z, c, **emas)
            if self.style_mixing_prob > 0:
                layers = ws.shape[1]
                cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, layers)
                mix = torch.rand([], device=ws.device) < self.style_mixing_prob
                cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, layers))
                second = {"skip_w_avg_update": True} if ada else {"update_emas": False}
                ws[:, cutoff:] = self.G_mapping(torch.randn_like(z), c, **second)[:, cutoff:]
        with self.host.ddp_sync(self.G_synthesis, sync):
            img: Tensor = self.G_synthesis(ws, **emas)
        return img, ws

    def run_D(
        self, img: Tensor, c: Tensor, sync: bool, blur_sigma: float, update_emas: bool
    ) -> Tensor:
        """Logits ``[B, 1]`` of the (blurred, augmented) images."""
        taps = math.floor(blur_sigma * 3)
        if taps > 0:
            assert self.host.upfirdn2d is not None
            # Gaussian of standard deviation ~ blur_sigma / sqrt(2 ln 2), as the host's.
            f = torch.arange(-taps, taps + 1, device=img.device).div(blur_sigma).square().neg()
            f = f.exp2()
            img = self.host.upfirdn2d.filter2d(img, f / f.sum())
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        with self.host.ddp_sync(self.D, sync):
            if self.protocol == "ada":
                logits: Tensor = self.D(img, c)
            else:
                logits = self.D(img, c, update_emas=update_emas)
        return logits

    def _blur_sigma(self, cur_nimg: int) -> float:
        if self.blur_fade_kimg <= 0:
            return 0.0
        return max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0) * self.blur_init_sigma

    def _reg_active(self) -> bool:
        if isinstance(self.penalty, BanachR1):
            return self.penalty.gamma != 0
        setting = self.penalty.calibration.lam_setting
        return setting != 0  # "auto" included

    def _report(self, name: str, value: Tensor) -> None:
        self.host.report(name, value)

    def _report_penalty(self) -> None:
        stats = self.penalty.stats
        assert stats is not None
        for field in dataclasses.fields(stats):
            self._report(f"Loss/lipreg/{field.name}", getattr(stats, field.name))

    def _arguments(
        self, args: tuple[Any, ...], sync: bool | None, gain: float | None, cur_nimg: int | None
    ) -> tuple[bool, float, int]:
        """(sync, gain, cur_nimg) from the host's call: StyleGAN2-ADA's positional order is
        ``sync, gain``, StyleGAN3's ``gain, cur_nimg`` (both hosts pass keywords)."""
        names = ("sync", "gain") if self.protocol == "ada" else ("gain", "cur_nimg")
        if len(args) > len(names):
            raise TypeError(
                f"accumulate_gradients takes (phase, real_img, real_c, gen_z, gen_c, "
                f"{', '.join(names)}) for this host, got {len(args)} extra positional arguments"
            )
        given: dict[str, Any] = {"sync": sync, "gain": gain, "cur_nimg": cur_nimg}
        for name, value in zip(names, args, strict=False):
            if given[name] is not None:
                raise TypeError(f"accumulate_gradients got multiple values for {name!r}")
            given[name] = value
        if given["gain"] is None:
            raise TypeError("accumulate_gradients needs gain (the phase's interval)")
        if self.protocol == "sg3" and given["sync"] is not None:
            raise TypeError("StyleGAN3's accumulate_gradients has no sync argument")
        if self.protocol == "ada" and given["cur_nimg"] is not None:
            raise TypeError("StyleGAN2-ADA's accumulate_gradients has no cur_nimg argument")
        sync_value = True if given["sync"] is None else bool(given["sync"])
        return sync_value, float(given["gain"]), int(given["cur_nimg"] or 0)

    # -- the protocol --------------------------------------------------------------------

    def accumulate_gradients(
        self,
        phase: str,
        real_img: Tensor,
        real_c: Tensor,
        gen_z: Tensor,
        gen_c: Tensor,
        *args: Any,
        sync: bool | None = None,
        gain: float | None = None,
        cur_nimg: int | None = None,
    ) -> None:
        """One round of one phase: compute that phase's losses on this batch and add
        ``gain`` times their gradients to the networks' ``.grad``.

        StyleGAN2-ADA calls ``(phase, real_img, real_c, gen_z, gen_c, sync, gain)``,
        StyleGAN3 ``(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg)``.
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        sync_, gain_, nimg = self._arguments(args, sync, gain, cur_nimg)
        wgan = isinstance(self.penalty, BanachGP)
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Dreg = phase in ("Dreg", "Dboth") and self._reg_active()
        blur = self._blur_sigma(nimg)

        if do_Gmain:
            img, _ = self.run_G(gen_z, gen_c, sync=sync_ and not do_Gpl, update_emas=False)
            logits = self.run_D(img, gen_c, sync=False, blur_sigma=blur, update_emas=False)
            self._report("Loss/scores/fake", logits)
            self._report("Loss/signs/fake", logits.sign())
            loss_G = -logits if wgan else F.softplus(-logits)
            self._report("Loss/G/loss", loss_G)
            _backward(loss_G, gain_)

        if do_Gpl:
            self._path_length(gen_z, gen_c, sync_, gain_)

        loss_Dgen: Tensor | float = 0.0
        fake: Tensor | None = None
        if do_Dmain:
            img, _ = self.run_G(gen_z, gen_c, sync=False, update_emas=True)
            logits = self.run_D(img, gen_c, sync=False, blur_sigma=blur, update_emas=True)
            self._report("Loss/scores/fake", logits)
            self._report("Loss/signs/fake", logits.sign())
            loss_Dgen = logits if wgan else F.softplus(logits)
            _backward(loss_Dgen, gain_)
            fake = img.detach()

        if do_Dmain or do_Dreg:
            self._real_and_reg(
                real_img,
                real_c,
                gen_z,
                gen_c,
                fake,
                loss_Dgen,
                do_Dmain,
                do_Dreg,
                sync_,
                gain_,
                blur,
            )

    def _path_length(self, gen_z: Tensor, gen_c: Tensor, sync: bool, gain: float) -> None:
        """Path-length regularisation ``(||J_w^T y||_2 - a)^2`` with ``a`` a running mean."""
        n = gen_z.shape[0] // self.pl_batch_shrink
        img, ws = self.run_G(gen_z[:n], gen_c[:n], sync=sync, update_emas=False)
        y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        disable = True if self.protocol == "ada" else self.pl_no_weight_grad
        with self.host.no_weight_gradients(disable):
            (jy,) = torch.autograd.grad([(img * y).sum()], [ws], create_graph=True)
        lengths = jy.square().sum(2).mean(1).sqrt()
        a = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(a.detach())
        pl = (lengths - a).square()
        self._report("Loss/pl_penalty", pl)
        loss = pl * self.pl_weight
        self._report("Loss/G/reg", loss)
        if self.protocol == "ada":
            # ADA's DDP needs every synthesis parameter in the graph of the synced backward.
            loss = img[:, 0, 0, 0] * 0 + loss
        _backward(loss, gain)

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
        outputs: list[Tensor] = []
        real_logits: Tensor | None = None
        if do_Dreg and not wgan:
            # R1 is taken at the reals: one evaluation of D serves both the loss and R1.
            critic = critic_at(real_c, sync)
            with self.host.no_weight_gradients():
                reg = self.penalty(critic, real)
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
        if do_Dreg:
            assert isinstance(reg, Tensor)
            if isinstance(self.penalty, BanachR1):
                # The host's per-sample R1 statistic, averaged: E ||dD(x)||_{B*}^2.
                self._report("Loss/r1_penalty", reg.detach() * (2 / self.penalty.gamma))
            self._report("Loss/D/reg", reg.detach())
            self._report_penalty()
        terms = [t for t in (loss_Dreal, reg) if isinstance(t, Tensor)]
        if self.protocol == "ada":
            # ADA's DDP needs every discriminator parameter in the graph of the synced backward.
            terms = [out * 0 for out in outputs] + terms
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        _backward(total, gain)
