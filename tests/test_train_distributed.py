"""Two Gloo processes: DDP critic gradients equal one process's on the same global batch (with
lam and gamma estimated across processes), and a short run where rank 0 alone writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from train_helpers import fixed_batch, image_config, interpolate_fixed, one_thread, restore_threads

from lipreg.train import checkpoint
from lipreg.train.distributed import Context
from lipreg.train.loop import Trainer
from lipreg.train.runner import Runner

GLOBAL_BATCH = 8
SHAPE = (3, 8, 8)

setup_module, teardown_module = one_thread, restore_threads


def _critic_gradients(
    trainer: Trainer, real: torch.Tensor, fake: torch.Tensor
) -> list[torch.Tensor]:
    trainer.penalty.sampler = interpolate_fixed
    trainer.opt_d.zero_grad(set_to_none=True)
    trainer.critic_backward(real, fake)
    return [p.grad.clone() for p in trainer.d.parameters()]


def _worker(rank: int, world: int, init_file: str, out: str, results: dict) -> None:  # type: ignore[type-arg]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ctx = Context(rank=rank, world=world, device=torch.device("cpu"), owns_group=False)
        trainer = Trainer(image_config(Path(out), steps=2, eval_every=2), ctx=ctx)
        assert isinstance(trainer.critic, DistributedDataParallel)
        assert isinstance(trainer.generator, DistributedDataParallel)
        share = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        real, fake = fixed_batch(GLOBAL_BATCH, SHAPE, 1), fixed_batch(GLOBAL_BATCH, SHAPE, 2)
        grads = _critic_gradients(trainer, real[share], fake[share])
        lam, gamma = trainer.penalty.lam, trainer.penalty.gamma
        summary = Runner(trainer).run()
        weights = [p.detach().clone() for p in trainer.d.parameters()]
        results[rank] = (grads, lam, gamma, summary.files, weights)
        trainer.close()  # the group is the test's: this releases the DDP wrappers only
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one_on_the_global_batch(tmp_path: Path) -> None:
    with mp.Manager() as manager:
        shared = manager.dict()
        args = (2, os.fspath(tmp_path / "init"), os.fspath(tmp_path / "ddp"), shared)
        mp.spawn(_worker, args=args, nprocs=2)
        results = dict(shared)

    single = Trainer(image_config(tmp_path / "single"))
    real, fake = fixed_batch(GLOBAL_BATCH, SHAPE, 1), fixed_batch(GLOBAL_BATCH, SHAPE, 2)
    expected = _critic_gradients(single, real, fake)
    for rank in range(2):
        grads, lam, gamma, _, _ = results[rank]
        assert lam == pytest.approx(single.penalty.lam, rel=1e-6)
        assert gamma == pytest.approx(single.penalty.gamma, rel=1e-6)
        # the critic is gamma * f (--critic-scale gamma): its gradients are gamma times f's
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7 * single.penalty.gamma)
    # the replicas stay identical through training; rank 0 alone wrote the outputs
    for a, b in zip(results[0][4], results[1][4], strict=True):
        assert torch.equal(a, b)
    assert results[0][3] and results[1][3] == []
    state = checkpoint.load(tmp_path / "ddp")
    assert state["step"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])


@pytest.mark.slow
def test_torchrun_runs_the_module(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lipreg.train",
        "--data",
        "8gaussians",
        "--data-size",
        "128",
        "--width",
        "8",
        "--batch-size",
        "16",
        "--gen-batch-size",
        "16",
        "--steps",
        "2",
        "--no-progress",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A session of its own, so that a timeout ends torchrun's workers too.
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0, stderr[-3000:]
    assert stdout.count("lipreg train: wrote") == 1  # rank 0 only
    assert len(checkpoint.load(out)["rng"]) == 2
