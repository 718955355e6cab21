"""lipreg.integrations.studiogan against a stand-in with StudioGAN's signatures."""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import pytest
import torch

from conftest import host_without_pkg_resources
from lipreg import BanachGP, BanachR1
from lipreg.integrations.studiogan import AdvOutput, grad_penalty, r1_reg, stylegan_r1_reg

sys.path.insert(0, str(Path(__file__).parent / "standins"))
host = importlib.import_module("studiogan_host")
gradfix = importlib.import_module("utils.style_ops.conv2d_gradfix")


def batch(b: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(b, 3, 4, 4, generator=gen), torch.randn(b, 3, 4, 4, generator=gen)
    return real, torch.randint(0, 3, (b,), generator=gen), fake


def grads(d: torch.nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in d.parameters()]


@pytest.mark.parametrize("engine", ["func", "autograd"])
@pytest.mark.parametrize("b", [1, 5])
def test_l2_grad_penalty_equals_studiogan(engine: str, b: int) -> None:
    real, labels, fake = batch(b)
    values = []
    grad_lists = []
    fns = (grad_penalty(BanachGP("l2", lam=1.0, gamma=1.0, engine=engine)), host.cal_grad_penalty)  # type: ignore[arg-type]
    for fn in fns:
        torch.manual_seed(0)
        d = host.Discriminator()
        torch.manual_seed(3)
        value = fn(real, labels, fake, d, "cpu")
        value.backward()
        values.append(value.detach())
        grad_lists.append(grads(d))
    torch.testing.assert_close(values[0], values[1])
    for a, c in zip(*grad_lists, strict=True):
        torch.testing.assert_close(a, c)
    assert any(g.abs().sum() > 0 for g in grad_lists[0])  # gradients reach the critic


def test_penalty_leaves_batch_norm_running_statistics_alone() -> None:
    real, labels, fake = batch()
    torch.manual_seed(0)
    d = host.Discriminator()
    before = d.bn.running_mean.clone()
    grad_penalty(BanachGP("sobolev:s=-1"))(real, labels, fake, d, "cpu")
    torch.testing.assert_close(d.bn.running_mean, before)


@pytest.mark.parametrize("stylegan", [False, True])
def test_l2_r1_equals_studiogan(stylegan: bool) -> None:
    real, labels, _ = batch()
    values, grad_lists = [], []
    ours = (stylegan_r1_reg if stylegan else r1_reg)(BanachR1("l2", gamma=1.0))
    ref = host.stylegan_cal_r1_reg if stylegan else host.cal_r1_reg
    entered = gradfix.entered
    for fn in (ours, ref):
        torch.manual_seed(0)
        d = host.Discriminator()
        images = real.clone().requires_grad_(True)
        out = d(images, labels)["adv_output"]
        value = fn(out, images) if stylegan else fn(out, images, "cpu")
        value.backward()
        values.append(value.detach())
        grad_lists.append(grads(d))
    torch.testing.assert_close(values[0], values[1])
    for a, c in zip(*grad_lists, strict=True):
        torch.testing.assert_close(a, c)
    assert gradfix.entered == entered + (2 if stylegan else 0)


def test_r1_in_a_dual_norm_against_a_dense_computation() -> None:
    """Sobolev R1 = (gamma/2) mean_b g_b^T T^2 g_b with T the dense dual filter."""
    from conftest import dense_sobolev

    real, labels, _ = batch()
    torch.manual_seed(0)
    d = host.Discriminator().double()
    images = real.double().requires_grad_(True)
    out = d(images, labels)["adv_output"]
    value = r1_reg(BanachR1("sobolev:s=-1,c=5", gamma=3.0))(out, images, "cpu")
    (g,) = torch.autograd.grad(out.sum(), images)
    t = torch.from_numpy(dense_sobolev((4, 4), 3, s=1.0, c=5.0))
    expected = 1.5 * (g.flatten(1) @ t.T).square().sum(1).mean()
    torch.testing.assert_close(value.detach(), expected)


@pytest.mark.parametrize("norm", ["l2", "lp:p=4", "sobolev:s=-1,c=5", "w2:gamma_l2=0.1"])
def test_r1_from_outputs_equals_the_penalty_on_the_critic(norm: str) -> None:
    """From StudioGAN's outputs, R1 is BanachR1 evaluated on the critic, in any norm (also a
    local norm, measured at the images), and records the same statistics."""
    real, labels, _ = batch()
    torch.manual_seed(0)
    d = host.Discriminator().double()
    real = real.double().sigmoid() * 2 - 1  # images in [-1, 1]: densities for w2
    direct = BanachR1(norm, gamma=3.0)
    expected = direct(AdvOutput(d), real, labels=labels)
    adapted = BanachR1(norm, gamma=3.0)
    images = real.clone().requires_grad_(True)
    value = r1_reg(adapted)(d(images, labels)["adv_output"], images, "cpu")
    torch.testing.assert_close(value, expected)
    assert adapted.stats is not None and direct.stats is not None
    torch.testing.assert_close(adapted.stats.as_dict(), direct.stats.as_dict())


def test_r1_from_outputs_refuses_non_finite_gradients() -> None:
    real, labels, _ = batch()
    torch.manual_seed(0)
    d = host.Discriminator()
    images = real.clone().requires_grad_(True)
    out = d(images, labels)["adv_output"] * torch.tensor(float("inf"))
    with pytest.raises(ValueError, match="non-finite values in the penalty"):
        r1_reg(BanachR1("l2"))(out, images, "cpu")


def test_penalty_state_in_studiogan_checkpoint() -> None:
    """StudioGAN saves ``Dis.state_dict()`` and loads it with strict=True; the penalty attached
    to Dis (one line in loader.py) travels with it."""
    real, labels, fake = batch()
    torch.manual_seed(0)
    d = host.Discriminator()
    penalty = BanachGP("lp:p=3", lam="auto", gamma="auto")
    d.add_module("lipreg_penalty", penalty)
    grad_penalty(penalty)(real, labels, fake, d, "cpu")
    buf = io.BytesIO()
    torch.save({"state_dict": d.state_dict()}, buf)
    fresh = host.Discriminator()
    fresh.add_module("lipreg_penalty", BanachGP("lp:p=3", lam="auto", gamma="auto"))
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf)["state_dict"], strict=True)
    restored = fresh.lipreg_penalty
    assert int(restored.calibration.count) == 5
    assert (restored.lam, restored.gamma) == (penalty.lam, penalty.gamma)


def test_bad_configuration_fails_clearly() -> None:
    with pytest.raises(TypeError, match="lipreg penalty module"):
        grad_penalty(lambda *a: a[0].sum())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"needs a lipreg\.BanachR1"):
        r1_reg(BanachGP())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown norm"):
        grad_penalty(BanachGP("sobolv:s=1"))
    real, labels, _ = batch()
    d = host.Discriminator()
    out = d(real, labels)["adv_output"]
    with pytest.raises(ValueError, match="images must require grad"):
        r1_reg(BanachR1())(out, real, "cpu")


def test_missing_studiogan_package_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "utils.style_ops.conv2d_gradfix", None)
    real, labels, _ = batch()
    images = real.requires_grad_(True)
    out = host.Discriminator()(images, labels)["adv_output"]
    with pytest.raises(ImportError, match="run StudioGAN from its src/ directory"):
        stylegan_r1_reg(BanachR1())(out, images)


def test_a_missing_dependency_of_studiogan_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StudioGAN's conv2d_gradfix imports pkg_resources, which recent setuptools lack: the
    message must say so, not blame the working directory."""
    host_without_pkg_resources(tmp_path, monkeypatch, "utils.style_ops.conv2d_gradfix")
    real, labels, _ = batch()
    images = real.requires_grad_(True)
    out = host.Discriminator()(images, labels)["adv_output"]
    with pytest.raises(ImportError) as info:
        stylegan_r1_reg(BanachR1())(out, images)
    message = str(info.value)
    assert "pkg_resources" in message and "setuptools<82" in message, message
    assert "src/ directory" not in message


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_interpolation_weights_are_studiogans_for_float32_images(dtype: torch.dtype) -> None:
    """StudioGAN draws its weights with torch.rand(B, 1), in float32 whatever the images'
    dtype; lipreg draws them in the images' dtype. Float32 images (StudioGAN's) get the same
    weights from the same seed; float64 images other weights of the same distribution, as
    the docs say."""
    real, labels, fake = batch()
    real, fake = real.to(dtype), fake.to(dtype)
    values = []
    for fn in (grad_penalty(BanachGP("l2", lam=1.0, gamma=1.0)), host.cal_grad_penalty):
        torch.manual_seed(0)
        d = host.Discriminator().to(dtype)
        torch.manual_seed(3)
        values.append(fn(real, labels, fake, d, "cpu").detach())  # type: ignore[operator]
    same = torch.allclose(values[0], values[1], rtol=1e-5, atol=0)
    assert same == (dtype == torch.float32)
    docs = (Path(__file__).parents[1] / "docs" / "integrations" / "studiogan.md").read_text()
    assert "float64" in docs and "float32" in docs
