"""The random draws of a host's evaluation of its discriminator, replayed at perturbed points.

The derivative-free penalties (:class:`lipreg.ApproxR1`, ...) estimate ``||dD(x)||_{B*}^2``
from ``D(x + h) - D(x)``. The StyleGAN hosts and R3GAN augment their samples randomly
between the samples and ``D`` (ADA's ``AugmentPipe``) and draw new parameters at every
evaluation: ``D(aug'(x + h)) - D(aug(x))`` is then of order one instead of ``sigma``, and the
estimate measures the augmentation, not the gradient (on R3GAN's networks behind ADA's
pipe, R1 +30,000 % and R2 +1,200,000 %).
The exact penalties differentiate through the one evaluation the host made; the estimate
must make new ones, so it evaluates ``x + h`` with the random generators put back in the
state they had before the host evaluated ``x``: the augmentation then draws the same
parameters (flips, rotations, colour transforms) at ``x`` and ``x + h``, and so does
anything else random in the evaluation (dropout). This holds for augmentations whose
draws depend on the batch's shape and not its values, as the hosts' do. The generators
are restored after each replayed evaluation, so the host's own stream of random numbers
goes on as if the estimate had not run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RandomState:
    """The state of the CPU's random generator and of ``device``'s (CUDA, ...), taken
    before an evaluation, to evaluate other points with the same random draws."""

    device: torch.device  #: the device whose generator is saved beside the CPU's
    cpu: Tensor
    accelerator: Tensor | None  #: ``device``'s generator state (None on the CPU)

    @classmethod
    def capture(cls, device: torch.device) -> RandomState:
        """The generators' state now, for evaluations on ``device``."""
        accelerator = None
        if device.type != "cpu":
            accelerator = torch.get_device_module(device.type).get_rng_state(device)
        return cls(device, torch.get_rng_state(), accelerator)

    @contextmanager
    def replayed(self) -> Iterator[None]:
        """Inside: the generators in the captured state; after: as they were before."""
        devices = [] if self.accelerator is None else [self.device]
        with torch.random.fork_rng(devices=devices, device_type=self.device.type):
            torch.set_rng_state(self.cpu)
            if self.accelerator is not None:
                module = torch.get_device_module(self.device.type)
                module.set_rng_state(self.accelerator, self.device)
            yield

    def replaying(self, evaluate: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """``evaluate`` with the captured random draws at every call: a critic for the
        derivative-free penalties whose perturbed evaluations see the host's augmentation."""

        def critic(x: Tensor) -> Tensor:
            with self.replayed():
                return evaluate(x)

        return critic
