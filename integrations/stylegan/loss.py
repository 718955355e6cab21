"""``BanachLoss``: StyleGAN2's loss with its R1 measured in any norm, or Banach WGAN-GP.

NVlabs' StyleGAN2-ADA and StyleGAN3 build their loss by name from ``loss_kwargs``; this class
accepts either codebase's constructor arguments and ``accumulate_gradients`` call and keeps
the host's loss protocol (phases, gains, DDP sync, style mixing, path-length
regularisation, blur, augmentation), replacing only the discriminator's regulariser. Its
pieces: :mod:`._protocol` (which host), :mod:`._networks` (``run_G``/``run_D``),
:mod:`._path_length`, :mod:`._critic` (the discriminator's terms on real data) and
:mod:`._snapshot` (the penalty in the hosts' snapshots).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lipreg import BanachGP, BanachR1
from lipreg._validation import check_real
from lipreg.calibration import Setting
from lipreg.norms import Norm

from ._critic import CriticTerms
from ._host import load_host
from ._networks import backward
from ._path_length import PathLength
from ._protocol import DEFAULTS, PHASES, Protocol, call_arguments, identify
from ._snapshot import ATTRIBUTE, saved_penalty, unwrap

__all__ = ["ATTRIBUTE", "PHASES", "BanachLoss", "Protocol"]


def _module(value: object, name: str) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {type(value).__name__}")
    return value


class BanachLoss(PathLength, CriticTerms):
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
    through the host's ``training_stats`` (the host's names with its per-sample values, e.g.
    ``Loss/r1_penalty`` = ``||dD(x_b)||_{B*}^2`` for every real sample, plus
    ``Loss/lipreg/<stat>`` from the penalty's ``stats``). The regularising phases run when
    ``gamma != 0`` (r1) or ``lam != 0`` (gp), as the host's run when ``r1_gamma != 0``.

    Which host is calling is told by its arguments: ``G_mapping`` and ``G_synthesis`` for
    StyleGAN2-ADA, ``G`` for StyleGAN3. The penalty is an ``nn.Module`` (:attr:`penalty`)
    attached to the discriminator as ``D.lipreg_penalty`` so the host's snapshot pickles
    save its state; ``resume_pkl`` restores it from such a snapshot (the hosts copy only
    parameters and buffers of modules that exist before the loss is built), read as the host
    reads ``--resume`` (a path or a URL), when the snapshot's penalty is of the same kind and
    norm. Any other snapshot (no penalty, as NVIDIA's pretrained networks; another
    ``penalty``; another ``norm``) is transfer learning, as the host's ``--resume`` is: the
    penalty's estimates start fresh, with a warning saying why.

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
        resume_pkl: a snapshot pickle (path or URL) to restore the penalty's state from
            (when it was made with the same ``penalty`` and ``norm``, else a warning);
            ``None`` when not resuming.
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
        self.protocol: Protocol = identify(
            G_mapping, G_synthesis, G, blur_init_sigma, blur_fade_kimg
        )
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
        defaults = DEFAULTS[self.protocol]
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

        self.host = load_host(self.protocol)
        options: dict[type[nn.Module], str] = {BanachR1: "penalty='r1'", BanachGP: "penalty='gp'"}
        saved = None if resume_pkl is None else saved_penalty(resume_pkl, self.penalty, options)
        if saved is not None:
            self.penalty.load_state_dict(saved)  # checked as a whole before anything loads
        self.device = torch.device(device)
        self.penalty.to(self.device)
        self.D = D
        self.augment_pipe = augment_pipe
        self.G_mapping, self.G_synthesis = mapping, synthesis
        self.pl_mean = torch.zeros([], device=self.device)
        if attach_to_D:
            unwrap(D).add_module(ATTRIBUTE, self.penalty)

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
        saved, expected = state["penalty"], set(self.penalty.state_dict())
        if not isinstance(saved, dict) or set(saved) != expected:
            got = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(
                f"state['penalty'] is not the state of a {type(self.penalty).__name__} (keys "
                f"{sorted(expected)}, got {got}): it was saved by a loss with another penalty; "
                "build this loss with the penalty it was saved with"
            )
        self.penalty.load_state_dict(saved)
        self.pl_mean.copy_(pl_mean)

    def _reg_active(self) -> bool:
        if isinstance(self.penalty, BanachR1):
            return self.penalty.gamma != 0
        setting = self.penalty.calibration.lam_setting
        return setting != 0  # "auto" included

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
        sync_, gain_, nimg = call_arguments(self.protocol, args, sync, gain, cur_nimg)
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
            backward(loss_G, gain_)

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
            backward(loss_Dgen, gain_)
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
