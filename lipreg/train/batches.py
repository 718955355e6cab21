"""An endless, resumable stream of real batches, split across processes.

Each epoch visits a fresh permutation of the data set (``DistributedSampler`` with the run's
seed and the epoch number, so every process sees its own share of the same permutation);
batches never straddle epochs, the remainder of an epoch is dropped. The position
``(epoch, batch within the epoch)`` is the whole state, so a resumed run continues with
exactly the batches the interrupted one would have drawn, without re-reading skipped data.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from lipreg.train.data import TrainingData


class Batches(Iterator[Tensor]):
    """Endless batches ``[batch_size, *sample_shape]`` of this process's share of ``dataset``,
    each assembled in one call of :meth:`~lipreg.train.data.TrainingData.take` (a single
    gather for data held in memory).

    Args:
        dataset: the training data.
        batch_size: samples per batch on this process.
        seed: seed of the permutations (the same on every process).
        rank: this process's index.
        world: number of processes.
    """

    def __init__(
        self, dataset: TrainingData, batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        size = len(dataset)
        share = size // world
        if batch_size > share:
            raise ValueError(
                f"--batch-size: each of the {world} processes needs batches of {batch_size} "
                f"samples but gets only {share} of the {size} samples per epoch; lower the "
                "batch size or use more data (--data-size)"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.epoch = 0
        self.position = 0
        self._order = self._permutation()

    def _permutation(self) -> Tensor:
        """This process's indices of epoch ``self.epoch``, int64 ``[len(dataset) // world]``."""
        self.sampler.set_epoch(self.epoch)
        return torch.tensor(list(self.sampler), dtype=torch.int64)

    def __next__(self) -> Tensor:
        start = self.position * self.batch_size
        if start + self.batch_size > len(self._order):
            self.epoch, self.position, start = self.epoch + 1, 0, 0
            self._order = self._permutation()
        indices = self._order[start : start + self.batch_size]
        self.position += 1
        return self.dataset.take(indices)

    def state_dict(self) -> dict[str, int]:
        """The position in the stream: ``{"epoch": e, "position": batches drawn in e}``."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position saved by :meth:`state_dict`."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or position < 0:
            raise ValueError(f"invalid stream position {state}")
        self.epoch, self.position = epoch, position
        self._order = self._permutation()
