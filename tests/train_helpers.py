"""Small configurations shared by the trainer's tests (seconds on a CPU)."""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from lipreg.train.config import TrainConfig


def toy_config(out: Path, **overrides: Any) -> TrainConfig:
    """8 Gaussians, MLPs of width 16, batches of 16."""
    base = TrainConfig(
        data="8gaussians",
        data_size=256,
        width=16,
        batch_size=16,
        gen_batch_size=16,
        steps=4,
        log_every=1,
        eval_every=0,
        eval_samples=32,
        checkpoint_every=0,
        tensorboard=False,
        progress=False,
        out=str(out),
    )
    return dataclasses.replace(base, **overrides).checked()


def image_config(out: Path, **overrides: Any) -> TrainConfig:
    """8x8 photo patches, a DCGAN pair of width 4, batches of 8, W^{-1.5,2} with auto lam/gamma."""
    base = toy_config(
        out,
        data="patches",
        data_size=64,
        image_size=8,
        model="dcgan",
        width=4,
        batch_size=8,
        gen_batch_size=8,
        norm="sobolev:s=-1.5,p=2,c=5",
        lam="auto",
        gamma="auto",
        drift=1e-5,
    )
    return dataclasses.replace(base, **overrides).checked()


def read_scalars(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "scalars.jsonl").read_text().splitlines()]


def training_rows(out: Path) -> dict[int, dict[str, Any]]:
    """The per-step training scalars (not metrics), without the wall-clock rate."""
    rows = {}
    for row in read_scalars(out):
        if "loss/critic" in row:
            rows[row["step"]] = {k: v for k, v in row.items() if k != "images_per_s"}
    return rows


def usage_error(capsys: pytest.CaptureFixture[str], run: Callable[[], object]) -> str:
    """What ``run`` wrote to stderr; it must exit as argparse does on a usage error (code 2)."""
    with pytest.raises(SystemExit) as info:
        run()
    assert info.value.code == 2
    return capsys.readouterr().err


def interpolate_fixed(real: Tensor, fake: Tensor | None) -> Tensor:
    """Interpolates whose weights depend on the sample only (not on the batch split or the
    random state), so single- and multi-process runs penalise the same points."""
    assert fake is not None
    eps = (real.flatten(1).sum(1).sin() + 1) / 2
    eps = eps.view(-1, *([1] * (real.ndim - 1)))
    return eps * real + (1 - eps) * fake


def fixed_batch(n: int, shape: tuple[int, ...], seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g) * 2 - 1


_threads: list[int] = []


def one_thread() -> None:
    """``setup_module`` of the trainer's tests: tiny models run fastest on one thread, and on
    a shared machine OpenMP's spinning threads would otherwise slow them tenfold."""
    _threads.append(torch.get_num_threads())
    torch.set_num_threads(1)


def restore_threads() -> None:
    """``teardown_module`` matching :func:`one_thread`."""
    torch.set_num_threads(_threads.pop())


def write_cifar(folder: Path, n: int = 3, protocol: int = 2) -> dict[str, dict[bytes, object]]:
    """The official layout: five training batches, a test batch and batches.meta, each a
    pickled dict with bytes keys, b'data' uint8 [n, 3072] and b'labels' a list of ints."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch: dict[bytes, object] = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        batches[name] = batch
    meta = {b"label_names": [b"airplane"], b"num_cases_per_batch": n}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return batches
