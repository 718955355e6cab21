"""The trainer's Lipschitz methods beyond penalties: --penalty none, --constraint clip / sn,
--loss ctransform; checked against independent computations (bounds after every step,
operator norms of explicit matrices, double loops), and the errors for combinations that
make no method."""

from __future__ import annotations

import contextlib
import copy
import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from train_helpers import image_config, one_thread, restore_threads, toy_config, usage_error

from lipreg import FFTSpectralNorm
from lipreg.train import checkpoint
from lipreg.train.batches import Batches
from lipreg.train.checkpoint import CheckpointError
from lipreg.train.cli import main
from lipreg.train.config import TrainConfig
from lipreg.train.constraints import parse_constraint
from lipreg.train.loop import Trainer
from lipreg.train.objectives import method_problems
from lipreg.train.runner import Runner

setup_module, teardown_module = one_thread, restore_threads


# --- --constraint clip ------------------------------------------------------------------


def test_clipping_bounds_every_parameter_after_every_critic_step(tmp_path: Path) -> None:
    trainer = Trainer(toy_config(tmp_path, penalty="none", constraint="clip:c=0.05", steps=3))
    c = torch.tensor(0.05).item()  # the float32 bound the parameters are clamped to
    assert trainer.config.loss == "wgan"  # auto: the Wasserstein loss under a constraint

    def largest() -> float:
        return max(p.abs().max().item() for p in trainer.d.parameters())

    assert largest() <= c  # clipped when the run is built (the MLP starts far larger)
    before = [p.detach().clone() for p in trainer.d.parameters()]
    seen = []
    original = trainer.critic_step

    def critic_step() -> None:
        original()
        seen.append(largest())

    trainer.critic_step = critic_step  # type: ignore[method-assign]
    for _ in range(3):
        trainer.iteration()
    assert len(seen) == 3 * trainer.config.n_critic
    assert max(seen) <= c and max(seen) == c  # bounded, and the bound is reached
    moved = [not torch.equal(a, b) for a, b in zip(before, trainer.d.parameters(), strict=True)]
    assert any(moved)  # the critic trains (tensors held at the bound may not move)
    assert "wasserstein" not in trainer.scalars()  # clipping bounds it by an unknown constant


# --- --constraint sn --------------------------------------------------------------------


def _trained(tmp_path: Path, constraint: str, **overrides: object) -> Trainer:
    """The image run (8x8 patches, DCGAN critic of width 4) after 3 iterations."""
    trainer = Trainer(image_config(tmp_path, constraint=constraint, **overrides))
    for _ in range(3):
        trainer.iteration()
    trainer.d.eval()  # the normalised weights of the current u, v, without a further update
    return trainer


def _layers(critic: nn.Module) -> list[tuple[nn.Module, int]]:
    """Every conv and linear layer of the DCGAN critic with the side of its inputs."""
    sizes = []
    side = 8
    for m in critic.modules():
        if isinstance(m, nn.Conv2d):
            sizes.append((m, side))
            side //= m.stride[0]
        elif isinstance(m, nn.Linear):
            sizes.append((m, 0))
    return sizes


def _conv_norm(w: Tensor, side: int, stride: int, padding: int, circular: bool) -> float:
    """The l2 operator norm of the convolution with kernel ``w`` on ``side`` x ``side``
    inputs, from the SVD of its explicit matrix (the Jacobian at 0): zero padding and
    ``stride``, or with ``circular`` the stride-1 circular convolution of that grid."""
    k = w.shape[-1] - 1

    def conv(x: Tensor) -> Tensor:
        if circular:
            return F.conv2d(F.pad(x, (0, k, 0, k), mode="circular"), w)
        return F.conv2d(x, w, stride=stride, padding=padding)

    jac = torch.autograd.functional.jacobian(
        conv, torch.zeros(1, w.shape[1], side, side, dtype=w.dtype)
    )
    assert isinstance(jac, Tensor)
    matrix = jac.reshape(-1, w.shape[1] * side * side)
    return torch.linalg.matrix_norm(matrix, ord=2).item()


def test_power_spectral_normalisation_makes_every_weight_matrix_norm_one(
    tmp_path: Path,
) -> None:
    """SNGAN's normalisation: each layer's kernel, reshaped to [C_out, C_in k k], has largest
    singular value 1 (by an SVD, not by the power iteration it uses)."""
    trainer = _trained(tmp_path, "sn", penalty="none", lam=10.0, gamma=1.0, norm="l2")
    layers = _layers(trainer.d)
    assert [isinstance(m, nn.Conv2d) for m, _ in layers] == [True, False]  # conv, linear
    for layer, _ in layers:
        w = layer.weight.detach().double()
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3), layer


def test_fft_spectral_normalisation_bounds_every_layer_by_one(tmp_path: Path) -> None:
    """conv=fft (with a penalty too): every convolution of the trained critic is at most
    1-Lipschitz on its inputs, and the circular convolution at the padded size whose norm
    it divides by has norm exactly 1; both from explicit matrices. The linear layer keeps
    power iteration."""
    trainer = _trained(tmp_path, "sn:conv=fft")
    for layer, side in _layers(trainer.d):
        w = layer.weight.detach().double()
        if isinstance(layer, nn.Linear):
            assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=1e-3)
            continue
        assert isinstance(layer, nn.Conv2d)
        stride, pad = layer.stride[0], int(layer.padding[0])
        assert _conv_norm(w, side, stride, pad, circular=False) <= 1 + 1e-6
        padded = side + 2 * pad
        assert _conv_norm(w, padded, 1, 0, circular=True) == pytest.approx(1.0, abs=1e-6)
    assert "wasserstein" in trainer.scalars()


def test_fft_normalisation_is_computed_once_per_critic_step_with_the_same_gradients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(image_config(tmp_path, constraint="sn:conv=fft"))
    calls = []
    original = FFTSpectralNorm.forward

    def counted(self: FFTSpectralNorm, weight: Tensor) -> Tensor:
        calls.append(1)
        return original(self, weight)

    monkeypatch.setattr(FFTSpectralNorm, "forward", counted)
    trainer.critic_step()  # forwards on real, fake and the penalty's interpolates
    assert len(calls) == 1  # one convolution, normalised once
    x = torch.rand(4, *trainer.data.sample_shape)
    grads = []
    for block in (trainer.constraint.normalised_once, contextlib.nullcontext):
        trainer.d.zero_grad()
        with block():
            (trainer.d(x).sum() + trainer.d(x.flip(0)).square().sum()).backward()
        grads.append([q.grad.clone() for q in trainer.d.parameters()])
    for cached, plain in zip(*grads, strict=True):
        torch.testing.assert_close(cached, plain)


# --- --loss ctransform ------------------------------------------------------------------


def _cost(x: Tensor, y: Tensor, p: float) -> float:
    """``||x - y||_p`` over all entries, entry by entry."""
    pairs = zip(x.flatten().tolist(), y.flatten().tolist(), strict=True)
    return float(sum(abs(a - b) ** p for a, b in pairs) ** (1 / p))


def _c_transform_loops(d_real: Tensor, real: Tensor, fake: Tensor, p: float) -> list[float]:
    """``D^c(y_j) = min_i ||x_i - y_j||_p - D(x_i)`` by a double loop."""
    return [
        min(_cost(real[i], fake[j], p) - d_real[i].item() for i in range(real.shape[0]))
        for j in range(fake.shape[0])
    ]


@pytest.mark.parametrize(
    ("make", "norm", "p"),
    [(toy_config, "lp:p=3", 3.0), (toy_config, "l2", 2.0), (image_config, "l2", 2.0)],
    ids=["toy-l3", "toy-l2", "images-l2"],
)
def test_ctransform_critic_loss_is_the_double_loop(  # type: ignore[no-untyped-def]
    tmp_path: Path, make, norm: str, p: float
) -> None:
    config = make(
        tmp_path, penalty="none", loss="ctransform", norm=norm, lam=10.0, gamma=1.0, drift=0.5
    )
    trainer = Trainer(config)
    d = copy.deepcopy(trainer.d)
    g = torch.Generator().manual_seed(1)
    shape = trainer.data.sample_shape
    real, fake = torch.randn(5, *shape, generator=g), torch.randn(4, *shape, generator=g)
    trainer.critic_backward(real, fake)
    d_real = d(real).detach()
    w_hat = d_real.mean().item() + sum(_c_transform_loops(d_real, real, fake, p)) / 4
    expected = -w_hat + 0.5 * d_real.square().mean().item()
    assert trainer.last["loss/critic"].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert trainer.last["critic_gap"].item() == pytest.approx(w_hat, rel=1e-5, abs=1e-6)
    assert all(q.grad is not None for q in trainer.d.parameters())


def test_ctransform_generator_step_measures_fakes_against_a_fresh_real_batch(
    tmp_path: Path,
) -> None:
    config = toy_config(
        tmp_path, penalty="none", loss="ctransform", norm="lp:p=3", batch_size=8, gen_batch_size=6
    )
    trainer = Trainer(config)
    gen, d = copy.deepcopy(trainer.g), copy.deepcopy(trainer.d)
    stream = Batches(trainer.data, 8, seed=config.seed)
    stream.load_state_dict(trainer.batches.state_dict())
    torch.manual_seed(5)
    trainer.generator_step()
    assert trainer.batches.state_dict()["position"] == stream.position + 1  # one real batch
    torch.manual_seed(5)
    real, z = next(stream), torch.randn(6, trainer.z_dim)
    fake = gen(z).detach()
    expected = sum(_c_transform_loops(d(real).detach(), real, fake, 3.0)) / 6
    assert trainer.last["loss/generator"].item() == pytest.approx(expected, rel=1e-5)
    assert all(
        torch.equal(a, b) for a, b in zip(d.parameters(), trainer.d.parameters(), strict=True)
    )
    trainer.critic_step()
    values = trainer.scalars()
    assert values["wasserstein"] == values["critic_gap"]  # W_hat estimates W1 in the norm


# --- combinations -----------------------------------------------------------------------

NONE = {"penalty": "none"}
PROBLEMS = [
    ({"loss": "ctransform"}, "--loss ctransform with --penalty gp: .* add --penalty none"),
    ({**NONE, "loss": "ctransform", "constraint": "sn"}, "needs no constraint"),
    ({**NONE, "loss": "ctransform", "norm": "w2"}, "a local norm defines no cost"),
    ({**NONE, "loss": "wgan"}, "nothing bounds the critic"),
    ({**NONE, "constraint": "clip", "lam": "auto"}, "--lam 'auto' has no effect"),
    ({**NONE, "constraint": "sn", "gamma": 2.0}, "--gamma 2.0 has no effect"),
    ({**NONE, "constraint": "sn", "norm": "lp:p=3"}, "--norm 'lp:p=3' has no effect"),
    ({**NONE, "loss": "hinge", "lazy_every": 4}, "--lazy-every 4 has no effect"),
    ({**NONE, "loss": "ns", "gamma_final": 0.1}, "--gamma-final 0.1 has no effect"),
]


@pytest.mark.parametrize(("overrides", "message"), PROBLEMS)
def test_combinations_that_make_no_method_are_refused(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Trainer(toy_config(tmp_path, **overrides))


def test_combinations_that_make_a_method_are_accepted() -> None:
    losses = ("auto", "wgan", "ns", "hinge", "rpgan", "ctransform")
    constraints = ("none", "clip", "sn")
    accepted = set()
    for loss, constraint in itertools.product(losses, constraints):
        config = TrainConfig(penalty="none", loss=loss, constraint=constraint).checked()
        if not method_problems(config):
            accepted.add((loss, constraint))
    plain = {(loss, "none") for loss in ("auto", "ns", "hinge", "rpgan", "ctransform")}
    constrained = {(loss, c) for loss in losses[:-1] for c in constraints[1:]}
    assert accepted == plain | constrained
    with_penalty = TrainConfig(penalty="gp", constraint="sn", norm="sobolev:s=-1").checked()
    assert method_problems(with_penalty) == []  # SN and a penalty together (Kurach et al.)


def test_the_command_line_names_the_bad_combination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--data", "8gaussians", "--out", str(tmp_path / "run"), "--loss", "ctransform"]
    err = usage_error(capsys, lambda: main(args))
    assert "add --penalty none" in err
    err = usage_error(capsys, lambda: main([*args, "--penalty", "none", "--constraint", "x"]))
    assert "argument --constraint: unknown constraint 'x'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("none", "none"),
        ("clip", "clip:c=0.01"),
        ("clip:c=1e-3", "clip:c=0.001"),
        ("sn", "sn:conv=power"),
        (" sn : conv = fft ", "sn:conv=fft"),
    ],
)
def test_constraints_have_one_canonical_spelling(text: str, spec: str) -> None:
    assert parse_constraint(text).spec == spec
    assert TrainConfig(penalty="none", constraint=text).checked().constraint == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clip:c=0", "the clip range c must be a number > 0, got '0'"),
        ("clip:c=nan", "must be a number > 0"),
        ("clip:conv=fft", "clip takes c=..., got 'conv=fft'"),
        ("sn:conv=svd", "conv must be power or fft"),
        ("none:c=1", "none takes no options"),
        ("spectral", "unknown constraint 'spectral'"),
    ],
)
def test_bad_constraints_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_constraint(text)
    with pytest.raises(ValueError, match="--constraint: "):
        TrainConfig(constraint=text).checked()


# --- checkpoints --------------------------------------------------------------------------


def test_the_clip_range_is_checkpointed_and_a_foreign_state_refused(tmp_path: Path) -> None:
    config = toy_config(tmp_path, penalty="none", constraint="clip:c=0.02", steps=1)
    Runner(Trainer(config)).run()
    state = checkpoint.load(tmp_path)
    assert state["constraint"] == {"clip": {"c": 0.02, "biases": True}}
    resumed = Trainer(config, resume=state)
    assert resumed.constraint.clip is not None and resumed.constraint.clip.c == 0.02
    state["constraint"] = {}
    with pytest.raises(CheckpointError, match="constraint state"):
        Trainer(config, resume=state)


def test_checkpoints_from_before_the_constraint_option_had_none(tmp_path: Path) -> None:
    Runner(Trainer(toy_config(tmp_path, steps=1))).run()
    state = checkpoint.load(tmp_path)
    del state["config"]["constraint"], state["constraint"]  # as written before --constraint
    saved = TrainConfig.from_saved(state["config"])
    assert saved.constraint == "none"
    Runner(Trainer(toy_config(tmp_path, steps=2), resume=state)).run()
