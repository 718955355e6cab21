"""The options of ``lipreg train``: their definitions, help texts and value parsers.

:func:`build_parser` is the one place where an option is defined; every option maps to the
:class:`~lipreg.train.config.TrainConfig` field of the same name (``--lr-final`` ->
``lr_final``) but ``--preset``, ``--resume`` and ``--compare-norms``. An option left out is
absent from the parsed namespace (``argparse.SUPPRESS``), so presets and checkpoints can
supply it and :func:`lipreg.train.cli.parse_command` knows which options were given.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from lipreg.losses import LOSSES
from lipreg.train import values
from lipreg.train.config import (
    CRITIC_SCALES,
    LOSS_CHOICES,
    LR_DECAYS,
    MODELS,
    PRECISIONS,
    TrainConfig,
)
from lipreg.train.constraints import KINDS
from lipreg.train.ctransform import FORMULA as CTRANSFORM_FORMULA
from lipreg.train.data import DATASETS
from lipreg.train.penalties import PENALTIES
from lipreg.train.presets import PRESET_HELP, PRESETS

_D = TrainConfig()

_DESCRIPTION = """\
Train a GAN whose critic is regularised by a lipreg penalty,

    d_loss = loss.critic(d_real, d_fake) + penalty(critic, real, fake)

(the Wasserstein loss d_fake.mean() - d_real.mean() by default; see --loss) on toy 2-D
data, embedded images, CIFAR-10 (local, or fetched with --download) or a folder of images.
Writes scalars (scalars.jsonl, TensorBoard), sample grids, metrics (IS/FID/KID where
torch-fidelity is installed), plots and checkpoints to --out.
Several processes: torchrun --nproc_per_node N -m lipreg.train ... (batch sizes are global).
"""

_EPILOG = """\
examples:
  lipreg train --data 8gaussians --steps 2000 --norm lp:p=1 --lam auto --gamma auto
  lipreg train --data 8gaussians --steps 2000 --compare-norms l2 lp:p=1 lp:p=inf
  lipreg train --norm sobolev:s=-1.5 --lam auto --gamma auto --model dcgan --width 16
  lipreg train --preset bwgan-cifar10 --download   # fetches CIFAR-10 once into the cache
  lipreg train --preset bwgan-cifar10 --data-root ~/data --inception-weights inception.pth
  lipreg train --data digits --loss rpgan --penalty r1r2 --gamma 0.05 --norm sobolev:s=1
  lipreg train --data digits --penalty none --constraint sn:conv=fft --loss hinge
  lipreg train --data digits --penalty none --loss ctransform --norm sobolev:s=-1.5
  lipreg train --preset bwgan-digits --penalty r2 --loss ns --gamma 10  # the preset's lam gives way
  lipreg train --resume runs/lipreg            # continue an interrupted run exactly
"""


def _default(name: str) -> str:
    value = getattr(_D, name)
    if isinstance(value, tuple):
        value = " ".join(map(str, value))
    return f"(default: {value})"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``PROG: error: MESSAGE (see PROG
    --help)``, with exit status 2: the full usage would bury the message."""

    def error(self, message: str) -> NoReturn:
        """Exit with status 2 after writing ``message`` on one line to stderr."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser(prog: str | None = None) -> Parser:
    """The argument parser of ``lipreg train``; options left out are absent from the result
    (``argparse.SUPPRESS``), so presets and checkpoints can supply them."""
    p = Parser(
        prog=prog or "lipreg train",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a published configuration; options given explicitly override it, "
        "and its options that they make meaningless go back to their defaults (--penalty r2 "
        "drops the preset's --lam). " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()),
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        choices=list(DATASETS),
        help="the training data: "
        + "; ".join(f"{k}: {v.description}" for k, v in DATASETS.items())
        + f" {_default('data')}",
    )
    data.add_argument(
        "--data-root",
        metavar="DIR",
        help="directory of cifar10 (cifar-10-batches-py or its parent), fashion-mnist (its four "
        "IDX files, gzipped or not) or folder data (default: the cache, $LIPREG_CACHE, else "
        "$XDG_CACHE_HOME/lipreg or ~/.cache/lipreg; for fashion-mnist then Debian's "
        "/usr/share/datasets/fashion-mnist)",
    )
    data.add_argument(
        "--download",
        action=argparse.BooleanOptionalAction,
        help="fetch cifar10 / cifar10-test when absent from the data root, or repair them when "
        "a batch file is missing or unreadable: the official cifar-10-python.tar.gz, checked "
        "against its published MD5 and unpacked into --data-root or the cache, where later "
        "runs find it; fashion-mnist / fashion-mnist-test likewise, as their four official .gz "
        "files; mirrors are set by LIPREG_CIFAR10_URL (and LIPREG_CIFAR10_MD5) and "
        "LIPREG_FASHION_MNIST_URL (a folder), the timeout by LIPREG_DOWNLOAD_TIMEOUT; without "
        "it nothing is downloaded (default: off)",
    )
    data.add_argument(
        "--image-size",
        type=values.positive_int,
        metavar="N",
        help="side of the square training images (patch size for patches, a resize for the "
        "others); generators build sides b * 2**k with b in 4..7 (8, 10, 12, 14, 16, 20, 24, 28, "
        "32, ...) (default: the data's own, 32 for patches)",
    )
    data.add_argument(
        "--data-size",
        type=values.positive_int,
        metavar="N",
        help="samples generated for toy data and patches, or a seeded random subset of the "
        "others (default: 100000 toy points, 10000 patches, all images)",
    )
    models = p.add_argument_group("models")
    models.add_argument(
        "--model",
        choices=MODELS,
        help="networks: resnet (the paper's CIFAR-10 pair), dcgan, mlp (WGAN-GP toy, 3 x 512); "
        f"auto picks mlp for points, resnet for 32x32 images, dcgan otherwise {_default('model')}",
    )
    models.add_argument(
        "--width",
        type=values.positive_int,
        metavar="N",
        help="channels (resnet 128, dcgan 64) or hidden units (mlp 512) (default: those)",
    )
    models.add_argument(
        "--z-dim",
        type=values.positive_int,
        metavar="N",
        help="noise dimension (default: 128 for images, 2 for toy data)",
    )
    pen = p.add_argument_group("objective and penalty")
    pen.add_argument(
        "--loss",
        choices=LOSS_CHOICES,
        help="the losses of critic and generator: "
        + "; ".join(f"{k}: {v.formula}" for k, v in LOSSES.items())
        + f"; ctransform: {CTRANSFORM_FORMULA}; auto: wgan with gp, lp, dragan and fd and with "
        "--penalty none under a --constraint, ns with the zero-centred r1, r2, r1r2, approx-* "
        "and with no regulariser "
        f"{_default('loss')}",
    )
    pen.add_argument(
        "--penalty",
        choices=sorted(PENALTIES),
        help="; ".join(f"{k}: {v.description}" for k, v in PENALTIES.items())
        + f" {_default('penalty')}",
    )
    pen.add_argument(
        "--norm",
        type=values.norm_spec,
        metavar="SPEC",
        help="the norm of B: l2 | lp:p=P (1 <= P <= inf) | sobolev:s=S[,p=P][,c=C] | "
        "w2[:gamma_l2=G,low=L,high=H] (Wasserstein-2 tangent norm, images, fixed --lam and "
        f"--gamma), e.g. sobolev:s=-1.5 for W^(-3/2,2) {_default('norm')}",
    )
    pen.add_argument(
        "--compare-norms",
        type=values.norm_spec,
        nargs="+",
        metavar="SPEC",
        help="toy data only, instead of --norm: train one run per norm with the same seed, data "
        "and options, each in OUT/SPEC (':' written '_', e.g. OUT/lp_p=1), and draw their "
        "critics' value surfaces side by side, titled with each run's exact W1, in "
        "OUT/norm_comparison.png; e.g. --compare-norms l2 lp:p=1 lp:p=inf (not with --resume "
        "or torchrun)",
    )
    pen.add_argument(
        "--lam",
        type=values.number(0, math.inf, open_low=False, open_high=True, auto=True),
        metavar="auto|X",
        help="penalty weight lam >= 0, or auto: lam = E||X||_B over real data (the paper's "
        f"rule); not for r1, r2, r1r2, approx-*, which --gamma weights {_default('lam')}",
    )
    pen.add_argument(
        "--gamma",
        type=values.number(0, math.inf, open_low=True, open_high=True, auto=True),
        metavar="auto|X",
        help="Lipschitz constant gamma > 0, or auto: gamma = E||X||_B* over real data; with "
        f"the zero-centred r1, r2, r1r2 and approx-* the penalty's weight (a number) "
        f"{_default('gamma')}",
    )
    pen.add_argument(
        "--gamma-final",
        type=values.number(0, math.inf, open_low=False, open_high=True),
        metavar="X",
        help="r1, r2, r1r2, approx-*: the weight gamma goes from --gamma to X along a cosine over "
        "--decay-steps, then stays at X (R3GAN's schedule) (default: constant)",
    )
    pen.add_argument(
        "--drift",
        type=values.number(0, math.inf, open_low=False, open_high=True),
        metavar="X",
        help="weight of the drift term X * E[D(real)^2] in the critic loss (1e-5 in the "
        f"paper's code) {_default('drift')}",
    )
    pen.add_argument(
        "--critic-scale",
        choices=CRITIC_SCALES,
        help="gamma: the critic computes D = gamma * f(x), f the network (lipreg.scale_by_gamma;"
        " the same objective, but f only needs slope 1, so --gamma auto trains as fast as "
        "--gamma 1; with --gamma auto, lam and gamma are estimated once from up to 10000 real "
        "samples before training); none: D = f, the paper's reference code. Penalties "
        "without a Lipschitz constant (r1, r2, r1r2, approx-*) are never scaled "
        f"{_default('critic_scale')}",
    )
    pen.add_argument(
        "--constraint",
        type=values.constraint_spec,
        metavar="SPEC",
        help="a hard constraint on the critic's weights, alone (--penalty none) or with a "
        "penalty: "
        + "; ".join(f"{k}: {v}" for k, v in KINDS.items())
        + f" {_default('constraint')}",
    )
    pen.add_argument(
        "--lazy-every",
        type=values.positive_int,
        metavar="K",
        help="lazy regularisation: apply the penalty on every K-th critic step only, times K "
        f"(StyleGAN2 uses 16 with r1) {_default('lazy_every')}",
    )
    pen.add_argument(
        "--penalty-fraction",
        type=values.number(0, 1, open_low=True, open_high=False),
        metavar="F",
        help="evaluate the penalty on a random share F of each batch, max(1, round(F B)) "
        "samples drawn from the run's seeded random state (lipreg.Subsampled; at about F of "
        "the penalty's cost, an unbiased estimate of the whole batch's); with --lazy-every, "
        f"on the due steps only {_default('penalty_fraction')}",
    )
    pen.add_argument(
        "--sigma",
        type=values.number(0, math.inf, open_low=True, open_high=True),
        metavar="X",
        help="approx-r1, approx-r2, approx-r1r2: the root mean square of the perturbations' "
        "entries in data units (bias grows like sigma^2, the gradient's noise as sigma falls; "
        f"the default suits data in [-1, 1]) {_default('sigma')}",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument(
        "--steps",
        type=values.positive_int,
        metavar="N",
        help=f"generator steps {_default('steps')}",
    )
    opt.add_argument(
        "--n-critic",
        type=values.positive_int,
        metavar="N",
        help=f"critic steps per generator step {_default('n_critic')}",
    )
    opt.add_argument(
        "--batch-size",
        type=values.positive_int,
        metavar="N",
        help=f"real and fake samples per critic step, over all processes {_default('batch_size')}",
    )
    opt.add_argument(
        "--gen-batch-size",
        type=values.positive_int,
        metavar="N",
        help=f"samples per generator step, over all processes {_default('gen_batch_size')}",
    )
    opt.add_argument(
        "--lr",
        type=values.number(0, math.inf, open_low=True, open_high=True),
        metavar="X",
        help=f"Adam learning rate of both networks {_default('lr')}",
    )
    opt.add_argument(
        "--betas",
        type=values.number(0, 1, open_low=False, open_high=True),
        nargs=2,
        metavar=("B1", "B2"),
        help=f"Adam betas {_default('betas')}",
    )
    opt.add_argument(
        "--lr-decay",
        choices=LR_DECAYS,
        help="linear or cosine: learning rates go from --lr to --lr-final at --decay-steps and "
        f"stay there (cosine as R3GAN's); none: constant {_default('lr_decay')}",
    )
    opt.add_argument(
        "--lr-final",
        type=values.number(0, math.inf, open_low=False, open_high=True),
        metavar="X",
        help="where --lr-decay linear or cosine ends (default: 0)",
    )
    opt.add_argument(
        "--decay-steps",
        type=values.positive_int,
        metavar="N",
        help="the generator step at which every schedule (learning rate, --beta2-final, "
        "--gamma-final, --ema-half-life) reaches its final value (default: --steps)",
    )
    opt.add_argument(
        "--beta2-final",
        type=values.number(0, 1, open_low=False, open_high=True),
        metavar="B2",
        help="Adam's beta2 goes from the second of --betas to B2 along a cosine over "
        "--decay-steps (R3GAN's schedule) (default: constant)",
    )
    opt.add_argument(
        "--ema",
        type=values.number(0, 1, open_low=False, open_high=True),
        metavar="DECAY",
        help="decay of the generator's exponential moving average used for samples and "
        f"metrics; 0 turns it off {_default('ema')}",
    )
    opt.add_argument(
        "--ema-half-life",
        type=values.number(0, math.inf, open_low=True, open_high=True),
        metavar="STEPS",
        help="instead of --ema's constant decay, a half-life in generator steps that grows from "
        "0 to STEPS along a cosine over --decay-steps: decay 0.5 ** (1 / half-life) (R3GAN's "
        "weight average, which counts images) (default: off)",
    )
    opt.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="32: float32; bf16 / fp16: autocast (fp16 with GradScalers, also inside the "
        f"penalty) {_default('precision')}",
    )
    opt.add_argument(
        "--device",
        type=values.device,
        help="auto (cuda if available), cpu, cuda, cuda:N; under torchrun each process uses "
        f"cuda:LOCAL_RANK {_default('device')}",
    )
    opt.add_argument(
        "--seed",
        type=values.count,
        metavar="N",
        help=f"seed of data, weights, noise {_default('seed')}",
    )
    outs = p.add_argument_group("outputs")
    outs.add_argument(
        "--out",
        metavar="DIR",
        help=f"run directory {_default('out')}; with --resume, the checkpoint's directory",
    )
    outs.add_argument(
        "--log-every",
        type=values.positive_int,
        metavar="N",
        help=f"write scalars every N steps {_default('log_every')}",
    )
    outs.add_argument(
        "--eval-every",
        type=values.count,
        metavar="N",
        help="sample grid and metrics every N steps (and at the end); 0: only at the end "
        f"{_default('eval_every')}",
    )
    outs.add_argument(
        "--eval-samples",
        type=values.positive_int,
        metavar="N",
        help="generated and real samples per evaluation (toy data: at most 4096, whose exact "
        f"W1 is an assignment problem) {_default('eval_samples')}",
    )
    outs.add_argument(
        "--checkpoint-every",
        type=values.count,
        metavar="N",
        help="checkpoint every N steps (always at the end and on SIGINT/SIGTERM); 0: only "
        f"then {_default('checkpoint_every')}",
    )
    outs.add_argument(
        "--resume",
        metavar="PATH",
        help="continue exactly from a checkpoint (a checkpoint.pt or its run directory) with "
        "its settings, writing where the checkpoint is unless --out is given; output options "
        "may change, and --steps (which also moves the end of the learning-rate decay: the "
        "rate continues on the new line from the checkpoint's step)",
    )
    outs.add_argument(
        "--inception",
        action=argparse.BooleanOptionalAction,
        help="IS, FID and KID of images at every evaluation through torch-fidelity (pip "
        "install torch-fidelity), with its standard Inception weights, downloaded once into "
        "the cache and SHA-256 checked, or --inception-weights; without torch-fidelity the "
        "run says so and goes on (default: on)",
    )
    outs.add_argument(
        "--inception-weights",
        type=values.existing_file,
        metavar="PATH",
        help="a local copy of the Inception weights for IS, FID and KID (offline machines), "
        "checked at start-up against the published SHA-256; default: torch-fidelity's "
        "standard weights from the cache",
    )
    outs.add_argument(
        "--inception-weights-unverified",
        action=argparse.BooleanOptionalAction,
        help="accept an --inception-weights file other than the published one (weights you "
        "trust, for numbers that are not the standard IS/FID/KID): it is read as plain tensors "
        "(weights_only=True, never unpickled) and must fit torch-fidelity's Inception-v3 "
        "(default: off)",
    )
    outs.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        help="also write TensorBoard events when tensorboard is installed (default: on)",
    )
    outs.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar (default: on)",
    )
    return p
