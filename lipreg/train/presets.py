"""The published configurations that ``--preset`` starts from.

Each preset is a dict of :class:`~lipreg.train.config.TrainConfig` fields (plain values, as
the command line would set them); options given explicitly override it, and the options it
sets that those explicit choices make meaningless give way (:mod:`lipreg.train.unused`). A
new preset is one entry of :data:`PRESETS` and one line of :data:`PRESET_HELP`.
"""

from __future__ import annotations

import math
from typing import Any

# The paper's CIFAR-10 set-up (Adler & Lunz 2018, section 5, and its reference code): the
# WGAN-GP ResNet pair, Adam(2e-4, betas (0, 0.9)) decayed linearly to zero over 100k
# generator steps, 5 critic steps of batch 64 per generator step of batch 128, the drift
# term 1e-5 E[D(real)^2], lam and gamma estimated from the data, and a weight average of the
# generator with decay 0.99 as in the reference code. The W^{-3/2,2} run is the default;
# ``--norm lp:p=10`` gives the L^10 run.
PRESETS: dict[str, dict[str, Any]] = {
    "bwgan-cifar10": {
        "data": "cifar10",
        "model": "resnet",
        "width": 128,
        "z_dim": 128,
        "penalty": "gp",
        "norm": "sobolev:s=-1.5,p=2,c=5",
        "lam": "auto",
        "gamma": "auto",
        "drift": 1e-5,
        "steps": 100_000,
        "n_critic": 5,
        "batch_size": 64,
        "gen_batch_size": 128,
        "lr": 2e-4,
        "betas": (0.0, 0.9),
        "lr_decay": "linear",
        "ema": 0.99,
        # The reference code's critic is the network itself (slope gamma ~ E||X||_B*);
        # "gamma" would be the same objective, reached faster under Adam.
        "critic_scale": "none",
        "eval_every": 5000,
        "eval_samples": 10_000,
        "checkpoint_every": 5000,
    },
}
# WGAN-GP with the same networks and schedule (the paper's baseline, IS 7.86).
PRESETS["wgan-gp-cifar10"] = {**PRESETS["bwgan-cifar10"], "norm": "l2", "lam": 10.0, "gamma": 1.0}

# R3GAN's CIFAR-10 objective and schedules (Huang et al., NeurIPS 2024), read from the public
# code github.com/brownvc/R3GAN at commit 19a7ddf463fbac2bd39b4c1c73d63f1c441c7403: train.py's
# CIFAR10 preset (lines 178-196), the README's CIFAR-10 command (--batch=512, line 36),
# training/training_loop.py (the schedules, lines 29-38 and 307-331; the EMA, line 351) and
# R3GAN/Trainer.py (the losses). Its schedules run in images over decay_nimg = 2e7 (train.py
# line 190); one iteration is one D and one G step on batch_size = 512 images each
# (training_loop.py lines 218-227, 287-305, 358), so 2e7 images are 2e7 / 512 = 39062.5 of
# lipreg's generator steps (rounded up). lipreg's ResNet pair replaces R3GAN's networks; see
# docs/trainer.md for what differs.
_R3GAN_BATCH = 512  # README.md line 36: --batch=512
_R3GAN_HORIZON = math.ceil(2e7 / _R3GAN_BATCH)  # train.py line 190: decay_nimg = 2e7
PRESETS["r3gan-cifar10"] = {
    "data": "cifar10",
    "model": "resnet",
    "width": 128,  # lipreg's ResNet (R3GAN: 768 channels per stage, train.py line 179)
    "z_dim": 64,  # train.py line 183: NoiseDimension = 64
    "loss": "rpgan",  # R3GAN/Trainer.py: softplus(-(D(real) - D(fake))) and its mirror for G
    "penalty": "r1r2",  # R3GAN/Trainer.py: (Gamma / 2) * (R1Penalty + R2Penalty)
    "norm": "l2",  # R3GAN/Trainer.py: Gradient.square().sum([1, 2, 3])
    "gamma": 0.05,  # train.py line 195: gamma_scheduler base_value 0.05
    "gamma_final": 0.005,  # train.py line 195: final_value 0.005
    "drift": 0.0,
    "lazy_every": 1,
    "steps": _R3GAN_HORIZON,  # R3GAN trains until stopped (--kimg default 1e7 kimg, line 143)
    "decay_steps": _R3GAN_HORIZON,
    "n_critic": 1,  # training_loop.py lines 218-227: one D phase, one G phase
    "batch_size": _R3GAN_BATCH,
    "gen_batch_size": _R3GAN_BATCH,  # the G phase also draws batch_size (lines 290-305)
    "lr": 2e-4,  # train.py line 194: lr_scheduler base_value 2e-4
    "lr_final": 5e-5,  # train.py line 194: final_value 5e-5
    "lr_decay": "cosine",  # training_loop.py lines 29-38: cosine_decay_with_warmup, no warm-up
    "betas": (0.0, 0.9),  # training_loop.py line 331: betas (0, beta2); train.py line 196: 0.9
    "beta2_final": 0.99,  # train.py line 196: beta2_scheduler final_value 0.99
    # train.py lines 189 and 192: EMA half-life from 0 to ema_nimg = 5e6 images, in steps
    "ema_half_life": 5e6 / _R3GAN_BATCH,
    "eval_every": 5000,
    "eval_samples": 50_000,  # train.py line 142: --metrics default fid50k_full
    "checkpoint_every": 5000,
}

# A Banach Wasserstein GAN on scikit-learn's digits, resized to 16x16 (the DCGAN pair builds
# sides b * 2**k with b in 4..7), on the papers' schedule: the paper's loss, penalty
# (W^{-3/2,2}, lam and gamma estimated from the data), optimiser and 5 critic steps per
# generator step with the penalty on every one, the critic parametrised as D = gamma * f
# (--critic-scale gamma) so that gamma = E||X||_B* trains in so short a run; the digits
# quality metric at every evaluation. The README's main job until December 2026, and what the
# studies (benchmarks/) start from, so that their questions stay those of the papers' schedule.
PRESETS["bwgan-digits-paper"] = {
    "data": "digits",
    "image_size": 16,
    "model": "dcgan",
    "width": 32,
    "z_dim": 128,
    "penalty": "gp",
    "norm": "sobolev:s=-1.5,p=2,c=5",
    "lam": "auto",
    "gamma": "auto",
    "critic_scale": "gamma",
    "drift": 1e-5,
    "steps": 600,
    "n_critic": 5,
    "batch_size": 64,
    "gen_batch_size": 128,
    "lr": 2e-4,
    "betas": (0.0, 0.9),
    "lr_decay": "linear",
    "ema": 0.999,
    "eval_every": 100,
    "eval_samples": 1000,
    "checkpoint_every": 0,
}

# The README's main job: the same Banach Wasserstein GAN on the schedule the tuned race chose
# for it (benchmarks/tuned_race.py, docs/studies.md "The tuned race"): one critic step per
# generator step with the penalty on a seeded quarter of each batch (lipreg.Subsampled), which
# ended 12 digits FID better than the published WGAN-GP in its time and with 3 dB less
# high-frequency excess; long enough for digits FID <= 15 in about 2 minutes on 2 CPU cores.
TUNED_SCHEDULE = {"n_critic": 1, "penalty_fraction": 0.25}
"""The tuned race's schedule (docs/studies.md): one critic step per generator step, the
penalty on a seeded quarter of each batch; the main jobs' schedule."""
PRESETS["bwgan-digits"] = {
    **PRESETS["bwgan-digits-paper"],
    **TUNED_SCHEDULE,
    "steps": 4000,
    "eval_every": 500,
}

# The same Banach Wasserstein GAN on Fashion-MNIST (Xiao et al. 2017) at its native 28x28:
# the DCGAN pair builds 7 * 2**2, so nothing is padded or resized and the Fashion-MNIST
# metric's classifier and the spectral metric judge exactly the pixels the generator draws.
# The papers' schedule first (what the studies on Fashion-MNIST start from), then the main
# job's tuned schedule, sized by measurement: 8000 steps ran in 8 min 40 s on 2 CPU cores
# (AMD EPYC) to Fashion-MNIST FID 99.0 +- 7.3 over 3 seeds with 7 to 9 classes and 0.3 to
# 1.4 dB high-frequency excess; 4000 steps stopped at FID 146 with garments hard to tell
# apart (docs/trainer.md).
PRESETS["bwgan-fashion-paper"] = {
    **PRESETS["bwgan-digits-paper"],
    "data": "fashion-mnist",
    "image_size": None,
}
PRESETS["bwgan-fashion"] = {
    **PRESETS["bwgan-fashion-paper"],
    **TUNED_SCHEDULE,
    "steps": 8000,
    "eval_every": 1000,
}

PRESET_HELP = {
    "bwgan-digits": "the README's main job: digits at 16x16, DCGAN pair of width 32, "
    "W^{-3/2,2} penalty with lam and gamma auto and D = gamma * f, one critic step per "
    "generator step with the penalty on a quarter of the batch, 4000 steps (about 2 minutes "
    "on 2 CPU cores), the digits quality metric every 500 steps",
    "bwgan-digits-paper": "the same on the papers' schedule (5 critic steps per generator "
    "step, the penalty on every one and on the whole batch), 600 steps, the metric every 100: "
    "what the studies in benchmarks/ start from",
    "bwgan-fashion": "the main job's recipe on Fashion-MNIST at its native 28x28 (the same "
    "networks, penalty and schedule), 8000 steps (about 9 minutes on 2 CPU cores), the "
    "Fashion-MNIST metric every 1000",
    "bwgan-fashion-paper": "the same on the papers' schedule, 600 steps: what the studies on "
    "Fashion-MNIST start from",
    "bwgan-cifar10": "the paper's CIFAR-10 run: ResNet pair, W^{-3/2,2} penalty, lam and gamma "
    "auto, drift 1e-5, 100k generator steps",
    "wgan-gp-cifar10": "the same set-up with WGAN-GP's penalty (L^2, lam 10, gamma 1)",
    "r3gan-cifar10": "R3GAN's CIFAR-10 objective on the ResNet pair: RpGAN loss, R1 + R2 with "
    "gamma 0.05 -> 0.005, Adam 2e-4 -> 5e-5 with beta2 0.9 -> 0.99 (cosines over 39063 steps), "
    "batch 512, one critic step, EMA half-life growing to 9766 steps",
}
