"""WeightClip (explicit call, optimiser hook, checkpointed range) and spectral_normalize
(power iteration and the exact FFT norm, checked on dense matrices of the normalised layers)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from conftest import dense_norm
from lipreg.bounds import lipschitz_upper_bound
from lipreg.constraints import FFTSpectralNorm, WeightClip, spectral_normalize


def critic() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 1),
    )


def scaled(net: nn.Module, factor: float) -> nn.Module:
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(factor)
    return net


# ---------------------------------------------------------------- weight clipping


def test_clip_clamps_every_parameter() -> None:
    net = scaled(critic(), 50.0)
    assert max(float(p.detach().abs().max()) for p in net.parameters()) > 0.5
    before = [p.detach().clone() for p in net.parameters()]
    WeightClip(net, c=0.5)()
    for p, q in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, q.clamp(-0.5, 0.5))


def test_biases_can_be_left_alone() -> None:
    net = scaled(critic(), 50.0)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    WeightClip(net, c=0.01, biases=False).clip()
    for name, p in net.named_parameters():
        if name.endswith("bias"):
            assert torch.equal(p, before[name])
        else:
            assert torch.equal(p, before[name].clamp(-0.01, 0.01))


def test_attach_clamps_after_every_step_until_removed() -> None:
    net = critic()
    clip = WeightClip(net, c=0.01)
    optimizer = torch.optim.SGD(net.parameters(), lr=10.0)
    handle = clip.attach(optimizer)
    x = torch.randn(4, 1, 6, 6)
    for _ in range(2):
        optimizer.zero_grad()
        net(x).square().mean().backward()
        optimizer.step()
        assert all(float(p.detach().abs().max()) <= 0.01 for p in net.parameters())
    handle.remove()
    optimizer.zero_grad()
    net(x).square().mean().backward()
    optimizer.step()
    assert any(float(p.detach().abs().max()) > 0.01 for p in net.parameters())


def test_clip_range_checkpoints() -> None:
    clip = WeightClip(critic(), c=0.05, biases=False)
    state = clip.state_dict()
    assert state == {"c": 0.05, "biases": False}
    other = WeightClip(critic(), c=0.01)
    other.load_state_dict(state)
    assert (other.c, other.biases) == (0.05, False)
    assert "c=0.05" in repr(other)


@pytest.mark.parametrize(
    ("state", "error", "words"),
    [
        ({"c": -1.0, "biases": True}, ValueError, "c must be in (0, inf)"),
        ({"c": 0.1}, ValueError, "exactly the keys 'c' and 'biases'"),
        ({"c": 0.1, "biases": True, "x": 1}, ValueError, "exactly the keys"),
        ({"c": 0.1, "biases": "yes"}, TypeError, "biases must be True or False"),
    ],
)
def test_bad_state_is_rejected_before_anything_changes(state, error, words) -> None:  # type: ignore[no-untyped-def]
    clip = WeightClip(critic(), c=0.01)
    with pytest.raises(error) as info:
        clip.load_state_dict(state)
    assert words in str(info.value)
    assert (clip.c, clip.biases) == (0.01, True)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: WeightClip(critic(), c=0.0), ValueError, "c must be in (0, inf)"),
        (lambda: WeightClip(critic(), c=math.nan), ValueError, "c must be in"),
        (lambda: WeightClip(critic(), c=True), TypeError, "c must be a real number"),
        (lambda: WeightClip("net"), TypeError, "module must be an nn.Module"),
        (lambda: WeightClip(nn.ReLU()), ValueError, "ReLU has no parameters to clip"),
        (
            lambda: WeightClip(nn.Sequential(nn.BatchNorm1d(3, affine=False)), biases=False),
            ValueError,
            "no parameters",
        ),
        (lambda: WeightClip(critic(), biases=0), TypeError, "biases must be True or False"),
        (lambda: WeightClip(critic()).attach("adam"), TypeError, "torch.optim.Optimizer"),
        (
            lambda: WeightClip(critic()).attach(
                torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
            ),
            ValueError,
            "updates none of the clipped module",
        ),
    ],
)
def test_bad_arguments(call, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


# ---------------------------------------------------------------- spectral normalisation


def test_power_iteration_normalises_every_layer() -> None:
    net = spectral_normalize(critic().double(), n_power_iterations=1)
    for i in (0, 3, 6):
        assert parametrize.is_parametrized(net[i], "weight")
    for _ in range(200):  # the power iteration converges over training-mode forwards
        net(torch.randn(2, 1, 6, 6, dtype=torch.float64))
    net.eval()
    assert float(torch.linalg.matrix_norm(net[6].weight.detach(), ord=2)) == pytest.approx(
        1.0, rel=1e-6
    )
    reshaped = net[0].weight.detach().reshape(4, -1)
    assert float(torch.linalg.matrix_norm(reshaped, ord=2)) == pytest.approx(1.0, rel=1e-6)


def test_fft_normalisation_makes_convolutions_1_lipschitz() -> None:
    net = critic().double()
    spectral_normalize(net, conv="fft", input_shape=(1, 6, 6))
    assert isinstance(net[0].parametrizations.weight[0], FFTSpectralNorm)
    net.eval()
    circular = dense_norm(net[3], (4, 6, 6))
    zero_padded = dense_norm(net[0], (1, 6, 6))
    assert circular == pytest.approx(1.0, rel=1e-10)  # exact for circular "same" layers
    assert zero_padded <= 1.0 + 1e-10  # a certified bound otherwise
    assert lipschitz_upper_bound(net, (1, 6, 6)) == pytest.approx(
        lipschitz_upper_bound(net[1:3], (4, 6, 6)), rel=1e-6
    )  # conv and linear layers contribute 1; batch norm and LeakyReLU the rest


def test_fft_normalisation_trains() -> None:
    net = spectral_normalize(critic().double(), conv="fft", input_shape=(1, 6, 6))
    net(torch.randn(3, 1, 6, 6, dtype=torch.float64)).sum().backward()
    original = net[3].parametrizations.weight.original
    assert original.grad is not None and original.grad.abs().sum() > 0


def test_trace_restores_modes_and_statistics() -> None:
    net = critic()
    net[1].eval()
    modes = [m.training for m in net]
    stats = net[1].running_mean.clone(), net[1].num_batches_tracked.clone()
    spectral_normalize(net, conv="fft", input_shape=(1, 6, 6))
    assert [m.training for m in net] == modes
    assert torch.equal(net[1].running_mean, stats[0])
    assert torch.equal(net[1].num_batches_tracked, stats[1])


class Skips(nn.Module):
    """``used`` runs on 6x6 (and on 3x3 too when ``share``); ``unused`` never runs."""

    def __init__(self, share: bool) -> None:
        super().__init__()
        self.used = nn.Conv2d(1, 1, 3, padding=1)
        self.unused = nn.Conv2d(1, 1, 3, padding=1)
        self.share = share

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.used(x)
        if self.share:
            h = self.used(nn.functional.avg_pool2d(h, 2))
        return h.flatten(1).sum(1)


@pytest.mark.parametrize(
    ("build", "call", "error", "words"),
    [
        (
            critic,
            lambda net: spectral_normalize(net, conv="exact"),
            ValueError,
            "conv must be 'power' or 'fft'",
        ),
        (
            critic,
            lambda net: spectral_normalize(net, conv="fft"),
            ValueError,
            "conv='fft' needs input_shape",
        ),
        (
            critic,
            lambda net: spectral_normalize(net, conv="fft", input_shape=(0, 6)),
            ValueError,
            "input_shape must be",
        ),
        (
            critic,
            lambda net: spectral_normalize(net, conv="fft", input_shape=(1, 7, 6)),
            ValueError,
            "the critic failed in a forward of input_shape (1, 7, 6): mat1 and mat2",
        ),
        (
            critic,
            lambda net: spectral_normalize(net, n_power_iterations=0),
            ValueError,
            "n_power_iterations",
        ),
        (
            critic,
            lambda net: spectral_normalize(net, eps=0.0),
            ValueError,
            "eps must be in (0, inf)",
        ),
        (nn.ReLU, spectral_normalize, ValueError, "no nn.Linear or nn.Conv layer"),
        (
            lambda: Skips(False),
            lambda net: spectral_normalize(net, conv="fft", input_shape=(1, 6, 6)),
            ValueError,
            "'unused' ran on no input",
        ),
    ],
)
def test_bad_arguments_change_nothing(build, call, error, words) -> None:  # type: ignore[no-untyped-def]
    net = build()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    with pytest.raises(error) as info:
        call(net)
    assert words in str(info.value)
    assert not any(parametrize.is_parametrized(m) for m in net.modules())
    after = net.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert [m.training for m in net.modules()] == modes


def test_a_critic_that_is_no_module_is_rejected() -> None:
    with pytest.raises(TypeError) as info:
        spectral_normalize("net")  # type: ignore[arg-type]
    assert "critic must be an nn.Module" in str(info.value)


def test_shared_layer_on_two_sizes_is_rejected_before_any_change() -> None:
    net = Skips(True)
    with pytest.raises(ValueError, match=r"'used' ran on \[\(3, 3\), \(6, 6\)\]"):
        spectral_normalize(net, conv="fft", input_shape=(1, 6, 6))
    assert not parametrize.is_parametrized(net.used)
    assert not parametrize.is_parametrized(net.unused)


def test_normalising_twice_is_rejected_before_any_change() -> None:
    net = critic()
    spectral_normalize(net)
    fresh = critic()
    nn.utils.spectral_norm(fresh[3])  # the old hook-based API
    for already in (net, fresh):
        with pytest.raises(ValueError, match="already parametrized or spectrally normalised"):
            spectral_normalize(already)
    assert not parametrize.is_parametrized(fresh[0])
