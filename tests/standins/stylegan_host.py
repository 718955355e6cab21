"""A miniature of the StyleGAN2-ADA / StyleGAN3 training protocol, for testing the adapter.

Written for lipreg from the StyleGAN2 paper (Karras et al., CVPR 2020) and the hosts' public
calling conventions; it contains none of NVlabs' code. It provides:

* tiny networks with the hosts' call signatures: a mapping network ``mapping(z, c, ...)``
  with a ``w_avg`` buffer, a synthesis network ``synthesis(ws, ...)``, a generator holding
  both (StyleGAN3 passes ``G``; StyleGAN2-ADA passes ``G_mapping`` and ``G_synthesis``), a
  discriminator ``D(img, c, ...)`` with a minibatch-stddev layer, and a random
  differentiable augmentation pipe;
* :class:`ReferenceLoss`, StyleGAN2's loss written from the paper: non-saturating logistic
  losses, R1 ``(gamma / 2) ||grad_x D(x)||_2^2`` on reals, path-length regularisation
  ``(||J_w^T y||_2 - a)^2`` with ``a`` a running mean, style mixing, and for the StyleGAN3
  protocol the blur of the discriminator's inputs fading out over ``blur_fade_kimg``;
* :func:`train`, the hosts' phase schedule: phases ``Gmain``/``Greg``/``Dmain``/``Dreg``
  (or ``*both`` when a regulariser runs every step), the batch split into rounds with
  ``sync`` on the last one (StyleGAN2-ADA) and ``gain`` equal to the phase's interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_utils import misc, training_stats
from torch_utils.ops import conv2d_gradfix, upfirdn2d

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


class Mapping(nn.Module):
    """z (and label c) -> ws ``[B, num_ws, w_dim]``; tracks ``w_avg`` like the hosts."""

    def __init__(self, z_dim: int = 6, c_dim: int = 0, w_dim: int = 6, num_ws: int = 3) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.fc1 = nn.Linear(z_dim + c_dim, w_dim)
        self.fc2 = nn.Linear(w_dim, w_dim)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor,
        c: Tensor,
        skip_w_avg_update: bool = False,
        update_emas: bool | None = None,
    ) -> Tensor:
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        if self.c_dim:
            x = torch.cat([x, c], dim=1)
        w = F.leaky_relu(self.fc2(F.leaky_relu(self.fc1(x), 0.2)), 0.2)
        # StyleGAN2-ADA updates w_avg in training mode unless told to skip; StyleGAN3 on request.
        update = (self.training and not skip_w_avg_update) if update_emas is None else update_emas
        if update:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, 0.995))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)


class Synthesis(nn.Module):
    """ws -> images ``[B, C, R, R]``, every w modulating one layer."""

    def __init__(self, w_dim: int = 6, num_ws: int = 3, channels: int = 3, res: int = 8) -> None:
        super().__init__()
        self.channels, self.res = channels, res
        self.const = nn.Parameter(torch.randn(4, res, res))
        self.styles = nn.ModuleList(nn.Linear(w_dim, 4) for _ in range(num_ws))
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(num_ws - 1))
        self.to_rgb = nn.Conv2d(4, channels, 1)

    def forward(self, ws: Tensor, update_emas: bool = False) -> Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, style in enumerate(self.styles):
            x = x * (1 + style(ws[:, i]))[:, :, None, None]
            if i < len(self.convs):
                x = F.leaky_relu(self.convs[i](x), 0.2)
        return self.to_rgb(x)


class Generator(nn.Module):
    """StyleGAN3 passes the generator whole: ``G.mapping`` and ``G.synthesis``."""

    def __init__(self, c_dim: int = 0, res: int = 8) -> None:
        super().__init__()
        self.z_dim, self.c_dim = 6, c_dim
        self.mapping = Mapping(c_dim=c_dim)
        self.synthesis = Synthesis(res=res)


class MinibatchStd(nn.Module):
    """Appends the standard deviation of each feature over a group of samples, averaged to
    one channel: the layer that couples a discriminator's outputs across the batch."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        groups = x.reshape(g, n // g, c, h, w)
        std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
        return torch.cat([x, std.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


class Discriminator(nn.Module):
    """``D(img, c)`` -> logits ``[B, 1]``; projection conditioning when ``c_dim > 0``."""

    def __init__(self, c_dim: int = 0, channels: int = 3, res: int = 8) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.mbstd = MinibatchStd()
        self.conv2 = nn.Conv2d(9, 8, 3, padding=1, stride=2)
        self.fc = nn.Linear(8 * (res // 2) ** 2, 8)
        self.out = nn.Linear(8, 1)
        self.embed = nn.Linear(c_dim, 8) if c_dim else None

    def forward(self, img: Tensor, c: Tensor, update_emas: bool = False) -> Tensor:
        x = F.leaky_relu(self.conv1(img), 0.2)
        x = F.leaky_relu(self.conv2(self.mbstd(x)), 0.2)
        x = F.leaky_relu(self.fc(x.flatten(1)), 0.2)
        if self.embed is None:
            return self.out(x)
        return (x * self.embed(c)).sum(1, keepdim=True) / math.sqrt(8)


class AugmentPipe(nn.Module):
    """Random differentiable augmentations with probability ``p`` (x-flips, brightness)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, img: Tensor) -> Tensor:
        n = img.shape[0]
        flip = torch.rand(n, 1, 1, 1, device=img.device) < self.p
        img = torch.where(flip, img.flip(3), img)
        shift = torch.randn(n, 1, 1, 1, device=img.device) * 0.2
        shift = shift * (torch.rand(n, 1, 1, 1, device=img.device) < self.p)
        return img + shift


class ReferenceLoss:
    """StyleGAN2's loss under either host's protocol (``protocol="ada"`` or ``"sg3"``).

    The constructor takes that host's arguments by keyword; ``accumulate_gradients`` takes
    ``(phase, real_img, real_c, gen_z, gen_c, sync, gain)`` (ADA) or
    ``(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg)`` (SG3) by keyword.
    """

    def __init__(self, protocol: str, device: torch.device, **kw: Any) -> None:
        self.protocol = protocol
        self.device = device
        if protocol == "ada":
            self.mapping, self.synthesis = kw["G_mapping"], kw["G_synthesis"]
        else:
            self.mapping, self.synthesis = kw["G"].mapping, kw["G"].synthesis
        self.D = kw["D"]
        self.augment_pipe = kw.get("augment_pipe")
        self.mixing = kw.get("style_mixing_prob", 0.9 if protocol == "ada" else 0.0)
        self.r1_gamma = kw.get("r1_gamma", 10)
        self.pl_weight = kw.get("pl_weight", 2 if protocol == "ada" else 0)
        self.pl_shrink = kw.get("pl_batch_shrink", 2)
        self.pl_decay = kw.get("pl_decay", 0.01)
        self.pl_no_weight_grad = kw.get("pl_no_weight_grad", False)
        self.blur_init_sigma = kw.get("blur_init_sigma", 0)
        self.blur_fade_kimg = kw.get("blur_fade_kimg", 0)
        self.pl_mean = torch.zeros([], device=device)

    def _sync(self, module: nn.Module, sync: bool) -> Any:
        return misc.ddp_sync(module, sync)

    def generate(
        self, z: Tensor, c: Tensor, sync: bool, update_emas: bool
    ) -> tuple[Tensor, Tensor]:
        ada = self.protocol == "ada"
        emas: dict[str, bool] = {} if ada else {"update_emas": update_emas}
        with self._sync(self.mapping, sync):
            ws = self.mapping(z, c, **emas)
            if self.mixing > 0:
                # Mix a second latent from a random layer onwards, with probability `mixing`.
                n = ws.shape[1]
                cut = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, n)
                keep = torch.rand([], device=ws.device) < self.mixing
                cut = torch.where(keep, cut, torch.full_like(cut, n))
                extra = {"skip_w_avg_update": True} if ada else {"update_emas": False}
                ws[:, cut:] = self.mapping(torch.randn_like(z), c, **extra)[:, cut:]
        with self._sync(self.synthesis, sync):
            img = self.synthesis(ws) if ada else self.synthesis(ws, update_emas=update_emas)
        return img, ws

    def discriminate(
        self, img: Tensor, c: Tensor, sync: bool, blur_sigma: float, update_emas: bool
    ) -> Tensor:
        taps = math.floor(blur_sigma * 3)
        if taps > 0:
            f = torch.arange(-taps, taps + 1, device=img.device).div(blur_sigma).square().neg()
            f = f.exp2()
            img = upfirdn2d.filter2d(img, f / f.sum())
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        with self._sync(self.D, sync):
            if self.protocol == "ada":
                return self.D(img, c)
            return self.D(img, c, update_emas=update_emas)

    def accumulate_gradients(self, phase: str, real_img: Tensor, real_c: Tensor, gen_z: Tensor,
                             gen_c: Tensor, gain: float, sync: bool = True,
                             cur_nimg: int = 0) -> None:  # fmt: skip
        assert phase in PHASES
        ada = self.protocol == "ada"
        do_g = phase in ("Gmain", "Gboth")
        do_pl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_d = phase in ("Dmain", "Dboth")
        do_r1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0
        blur = 0.0
        if not ada and self.blur_fade_kimg > 0:
            blur = max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0) * self.blur_init_sigma
        if do_g:
            img, _ = self.generate(gen_z, gen_c, sync and not do_pl, update_emas=False)
            logits = self.discriminate(img, gen_c, False, blur, update_emas=False)
            training_stats.report("Loss/scores/fake", logits)
            training_stats.report("Loss/signs/fake", logits.sign())
            loss = F.softplus(-logits)  # -log sigmoid(D(G(z)))
            training_stats.report("Loss/G/loss", loss)
            loss.mean().mul(gain).backward()
        if do_pl:
            n = gen_z.shape[0] // self.pl_shrink
            img, ws = self.generate(gen_z[:n], gen_c[:n], sync, update_emas=False)
            y = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
            with conv2d_gradfix.no_weight_gradients(*(() if ada else (self.pl_no_weight_grad,))):
                (jy,) = torch.autograd.grad([(img * y).sum()], [ws], create_graph=True)
            lengths = jy.square().sum(2).mean(1).sqrt()
            a = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
            self.pl_mean.copy_(a.detach())
            pl = (lengths - a).square()
            training_stats.report("Loss/pl_penalty", pl)
            training_stats.report("Loss/G/reg", pl * self.pl_weight)
            total = pl * self.pl_weight
            if ada:
                total = img[:, 0, 0, 0] * 0 + total
            total.mean().mul(gain).backward()
        loss_gen: Tensor | int = 0
        if do_d:
            img, _ = self.generate(gen_z, gen_c, False, update_emas=True)
            logits = self.discriminate(img, gen_c, False, blur, update_emas=True)
            training_stats.report("Loss/scores/fake", logits)
            training_stats.report("Loss/signs/fake", logits.sign())
            loss_gen = F.softplus(logits)  # -log(1 - sigmoid(D(G(z))))
            loss_gen.mean().mul(gain).backward()
        if do_d or do_r1:
            x = real_img.detach().requires_grad_(do_r1)
            logits = self.discriminate(x, real_c, sync, blur, update_emas=False)
            training_stats.report("Loss/scores/real", logits)
            training_stats.report("Loss/signs/real", logits.sign())
            loss_real: Tensor | int = 0
            if do_d:
                loss_real = F.softplus(-logits)  # -log sigmoid(D(x))
                training_stats.report("Loss/D/loss", loss_gen + loss_real)
            r1: Tensor | int = 0
            if do_r1:
                with conv2d_gradfix.no_weight_gradients():
                    (g,) = torch.autograd.grad([logits.sum()], [x], create_graph=True)
                sq = g.square().sum([1, 2, 3])
                r1 = sq * (self.r1_gamma / 2)
                training_stats.report("Loss/r1_penalty", sq)
                training_stats.report("Loss/D/reg", r1)
            total_d = loss_real + r1
            if ada:
                total_d = logits * 0 + total_d
            assert isinstance(total_d, Tensor)
            total_d.mean().mul(gain).backward()


def train(
    loss: Any,
    protocol: str,
    G_params: nn.Module,
    D: nn.Module,
    real: Tensor,
    *,
    steps: int,
    batch_gpu: int,
    g_reg_interval: int | None = 4,
    d_reg_interval: int | None = 16,
    lr: float = 2e-3,
    seed: int = 0,
) -> None:
    """The hosts' schedule: for every step, every due phase splits the batch into rounds of
    ``batch_gpu`` and calls ``loss.accumulate_gradients`` on each (``sync`` on the last round
    for StyleGAN2-ADA; ``cur_nimg`` for StyleGAN3), then steps that phase's Adam optimiser.
    A regulariser with an interval gets ``*main`` and ``*reg`` phases (``gain = interval``
    and Adam hyperparameters adjusted by ``interval / (interval + 1)``); without one, ``*both``.
    """
    phases: list[tuple[str, nn.Module, torch.optim.Optimizer, int]] = []
    for name, module, interval in (("G", G_params, g_reg_interval), ("D", D, d_reg_interval)):
        if interval is None:
            opt = torch.optim.Adam(module.parameters(), lr=lr, betas=(0.0, 0.99))
            phases.append((name + "both", module, opt, 1))
        else:
            ratio = interval / (interval + 1)
            betas = (0.0, 0.99**ratio)
            opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=betas)
            phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    gen = torch.Generator().manual_seed(seed)
    batch = real.shape[0]
    cur_nimg = 0
    for step in range(steps):
        z_all = torch.randn(len(phases), batch, G_params.z_dim, generator=gen)  # type: ignore[arg-type]
        for (name, module, opt, interval), z in zip(phases, z_all, strict=True):
            if step % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            rounds = list(zip(real.split(batch_gpu), z.split(batch_gpu), strict=True))
            for i, (r, zz) in enumerate(rounds):
                c = torch.zeros(r.shape[0], 0)
                kw: dict[str, Any] = {"phase": name, "real_img": r, "real_c": c, "gen_z": zz,
                                      "gen_c": c, "gain": interval}  # fmt: skip
                if protocol == "ada":
                    kw["sync"] = i == len(rounds) - 1
                else:
                    kw["cur_nimg"] = cur_nimg
                loss.accumulate_gradients(**kw)
            module.requires_grad_(False)
            opt.step()
        cur_nimg += batch


def parameters_of(*modules: nn.Module) -> Callable[[], list[Tensor]]:
    """A snapshot function of every parameter and buffer of ``modules`` (cloned)."""

    def snapshot() -> list[Tensor]:
        return [t.detach().clone() for m in modules for t in [*m.parameters(), *m.buffers()]]

    return snapshot
