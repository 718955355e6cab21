"""The trainer's networks: the papers' architectures, shapes, and critics whose samples do not
interact (so the batched input gradient of a penalty is exact)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from train_helpers import one_thread, restore_threads

from lipreg import input_gradient
from lipreg.train.models import (
    DCGANCritic,
    DCGANGenerator,
    MLPCritic,
    MLPGenerator,
    ResNetCritic,
    ResNetGenerator,
    build_models,
)

setup_module, teardown_module = one_thread, restore_threads


def test_resnet_generator_is_the_papers() -> None:
    g = ResNetGenerator()
    assert g.linear.in_features == 128 and g.linear.out_features == 4 * 4 * 128
    assert len(g.blocks) == 3  # 4 -> 8 -> 16 -> 32
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 3 * 2 + 1
    assert g.conv.kernel_size == (3, 3) and g.conv.out_channels == 3
    x = g(torch.randn(5, 128) * 10)
    assert x.shape == (5, 3, 32, 32) and x.abs().max() < 1  # tanh


def test_mlps_are_wgan_gp_toy_networks() -> None:
    g, d = MLPGenerator(), MLPCritic()
    for net, first in ((g.net, 2), (d.net, 2)):
        linears = [m for m in net if isinstance(m, nn.Linear)]
        assert [m.in_features for m in linears] == [first, 512, 512, 512]
        assert sum(isinstance(m, nn.ReLU) for m in net) == 3
    assert g(torch.randn(4, 2)).shape == (4, 2) and d(torch.randn(4, 2)).shape == (4,)


@pytest.mark.parametrize(("side", "base"), [(8, 4), (12, 6), (16, 4), (28, 7), (32, 4)])
def test_dcgan_pair_for_any_side(side: int, base: int) -> None:
    g, d = DCGANGenerator(16, 8, 1, side), DCGANCritic(1, 8, side)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 1, side, side) and d(x).shape == (3,)
    # the generator starts from base x base and the critic ends there
    assert g.base == base and g.linear[0].out_features == base * base * g.start
    assert d.convs(x).shape[-2:] == (base, base)


def test_a_28x28_pair_is_the_mnist_dcgan() -> None:
    g = DCGANGenerator(128, 64, 1, 28)
    assert g.linear[0].out_features == 7 * 7 * 128  # 7x7 -> 14x14 -> 28x28
    assert [m.stride for m in g.convs if isinstance(m, nn.ConvTranspose2d)] == [(2, 2)] * 2
    r = ResNetGenerator(16, 8, 1, 28)
    assert r.linear.out_features == 7 * 7 * 8 and len(r.blocks) == 2
    assert r(torch.randn(2, 16)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("side", [4, 7, 9, 18, 36, 60])
def test_sides_without_a_base_in_4_to_7_are_refused(side: int) -> None:
    with pytest.raises(ValueError, match=f"b \\* 2\\*\\*k .* image_size={side};"):
        DCGANCritic(1, 8, side)


@pytest.mark.parametrize(
    "critic",
    [ResNetCritic(3, 8), DCGANCritic(3, 4, 16)],
    ids=["resnet", "dcgan"],
)
def test_critics_do_not_couple_samples(critic: nn.Module) -> None:
    x = torch.randn(4, 3, 16, 16)
    batched = input_gradient(critic, x)
    per_sample = input_gradient(critic, x, per_sample=True)
    torch.testing.assert_close(batched, per_sample, rtol=1e-5, atol=1e-6)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())


def test_build_models_choices_and_errors() -> None:
    g, d, z = build_models("auto", (2,), None, None)
    assert isinstance(g, MLPGenerator) and isinstance(d, MLPCritic) and z == 2
    g, d, z = build_models("auto", (3, 32, 32), 16, None)
    assert isinstance(g, ResNetGenerator) and isinstance(d, ResNetCritic) and z == 128
    g, d, _ = build_models("auto", (1, 8, 8), 8, 10)
    assert isinstance(g, DCGANGenerator) and isinstance(d, DCGANCritic)
    with pytest.raises(ValueError, match="--model mlp"):
        build_models("resnet", (2,), None, None)
    with pytest.raises(ValueError, match="b \\* 2\\*\\*k"):
        build_models("dcgan", (3, 36, 36), None, None)
    g, d, _ = build_models("auto", (1, 28, 28), 8, None)
    assert isinstance(g, DCGANGenerator) and isinstance(d, DCGANCritic) and g.base == 7
    with pytest.raises(ValueError, match="square images"):
        build_models("auto", (3, 16, 32), None, None)
