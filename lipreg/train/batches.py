"""An endless, resumable stream of real batches, split across processes.

Each epoch visits a fresh permutation of the data set (``DistributedSampler`` with the run's
seed and the epoch number, so every process sees its own share of the same permutation);
batches never straddle epochs, the remainder of an epoch is dropped. The position
``(epoch, batch within the epoch)`` is the whole state, so a resumed run continues with
exactly the batches the interrupted one would have drawn, without re-reading skipped data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler


def _sample(item: object) -> Tensor:
    """A data set item's sample: the item, or the first element of an (image, label) pair."""
    sample = item[0] if isinstance(item, (tuple, list)) else item
    if not isinstance(sample, Tensor):
        raise TypeError(f"data set items must be tensors or (tensor, label), got {type(item)}")
    return sample


class Batches(Iterator[Tensor]):
    """Endless batches ``[batch_size, ...]`` of this process's share of ``dataset``.

    Args:
        dataset: a map-style data set of samples (or ``(sample, label)`` pairs).
        batch_size: samples per batch on this process.
        seed: seed of the permutations (the same on every process).
        rank: this process's index.
        world: number of processes.
    """

    def __init__(
        self, dataset: Dataset[Any], batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        size = len(dataset) if isinstance(dataset, Sized) else 0
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
        self._order: list[int] = []
        self._load_epoch()

    def _load_epoch(self) -> None:
        self.sampler.set_epoch(self.epoch)
        self._order = list(self.sampler)

    def __next__(self) -> Tensor:
        start = self.position * self.batch_size
        if start + self.batch_size > len(self._order):
            self.epoch, self.position, start = self.epoch + 1, 0, 0
            self._load_epoch()
        indices = self._order[start : start + self.batch_size]
        self.position += 1
        return torch.stack([_sample(self.dataset[i]) for i in indices])

    def state_dict(self) -> dict[str, int]:
        """The position in the stream: ``{"epoch": e, "position": batches drawn in e}``."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position saved by :meth:`state_dict`."""
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or position < 0:
            raise ValueError(f"invalid stream position {state}")
        self.epoch, self.position = epoch, position
        self._load_epoch()
