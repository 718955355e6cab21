"""A stand-in for R3GAN's ``R3GAN/Trainer.py`` (written for lipreg; none of R3GAN's code).

It follows R3GAN's interface and the paper's formulas (Huang et al., NeurIPS 2024, eqs. for
RpGAN + R1 + R2): ``AdversarialTraining(Generator, Discriminator)`` with the static method
``ZeroCenteredGradientPenalty(Samples, Critics)``, per sample ``||grad_x sum D||_2^2``, which
the discriminator step looks up on the class, so replacing it there changes the step;

* discriminator step: real and generated samples (detached, requiring grad), scores of the
  preprocessed samples, ``softplus(-(D(real) - D(fake))) + (Gamma / 2)(R1 + R2)`` per pair,
  ``Scale`` times its mean backpropagated; returns the detached per-pair loss, the
  relativistic scores ``D(real) - D(fake)``, R1 and R2;
* generator step: ``softplus(-(D(fake) - D(real)))`` per pair, ``Scale`` times its mean
  backpropagated; returns the detached loss and scores.

Networks are called as ``Generator(Noise, Conditions)`` and ``Discriminator(x, Conditions)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _identity(x: Tensor) -> Tensor:
    return x


class AdversarialTraining:
    def __init__(self, Generator: nn.Module, Discriminator: nn.Module) -> None:
        self.Generator = Generator
        self.Discriminator = Discriminator

    @staticmethod
    def ZeroCenteredGradientPenalty(Samples: Tensor, Critics: Tensor) -> Tensor:
        (grad,) = torch.autograd.grad(Critics.sum(), Samples, create_graph=True)
        return grad.square().sum([1, 2, 3])

    def AccumulateDiscriminatorGradients(
        self,
        Noise: Tensor,
        RealSamples: Tensor,
        Conditions: Tensor | None,
        Gamma: float,
        Scale: float = 1,
        Preprocessor: Callable[[Tensor], Tensor] = _identity,
    ) -> list[Tensor]:
        real = RealSamples.detach().requires_grad_(True)
        fake = self.Generator(Noise, Conditions).detach().requires_grad_(True)
        d_real = self.Discriminator(Preprocessor(real), Conditions)
        d_fake = self.Discriminator(Preprocessor(fake), Conditions)
        r1 = AdversarialTraining.ZeroCenteredGradientPenalty(real, d_real)
        r2 = AdversarialTraining.ZeroCenteredGradientPenalty(fake, d_fake)
        scores = d_real - d_fake
        adversarial = F.softplus(-scores)
        (Scale * (adversarial + (Gamma / 2) * (r1 + r2)).mean()).backward()
        return [t.detach() for t in (adversarial, scores, r1, r2)]

    def AccumulateGeneratorGradients(
        self,
        Noise: Tensor,
        RealSamples: Tensor,
        Conditions: Tensor | None,
        Scale: float = 1,
        Preprocessor: Callable[[Tensor], Tensor] = _identity,
    ) -> list[Tensor]:
        fake = self.Generator(Noise, Conditions)
        d_fake = self.Discriminator(Preprocessor(fake), Conditions)
        d_real = self.Discriminator(Preprocessor(RealSamples.detach()), Conditions)
        scores = d_fake - d_real
        adversarial = F.softplus(-scores)
        (Scale * adversarial.mean()).backward()
        return [t.detach() for t in (adversarial, scores)]
