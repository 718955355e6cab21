"""What a user's callable returns (a critic, a sampler, a pairs callable, a custom norm, a
conditional critic's keyword arguments, a host's discriminator output) is checked once, in
the shared helper every entry point goes through (``lipreg.derivative.call_critic`` and
``critic_output``, ``_validation.check_points``, ``Norm._result``), with a message that names
the callable and what it returned, instead of reaching torch's internals. The checks read
metadata only: no extra forward, no host synchronisation, and they work inside torch.func."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import Calls, ConvCritic
from lipreg import (
    L2,
    ApproxR1,
    ApproxR1R2,
    BanachGP,
    BanachR1,
    BanachR1R2,
    BanachR2,
    CTransformLoss,
    FiniteDifferenceGP,
    Lazy,
    Subsampled,
    estimate_lipschitz,
    input_gradient,
)
from lipreg.integrations.r3gan import ZeroCenteredGradientPenalty

B = 4
REAL = torch.randn(B, 3, 8, 8)
FAKE = torch.randn(B, 3, 8, 8)
NET = ConvCritic()

# Every entry point that calls a critic: name -> call(critic, **critic_kwargs).
CRITIC_ENTRIES: dict[str, Callable[..., object]] = {
    "BanachGP": lambda c, **k: BanachGP()(c, REAL, FAKE, **k),
    "BanachGP autograd": lambda c, **k: BanachGP(engine="autograd")(c, REAL, FAKE, **k),
    "BanachGP per_sample": lambda c, **k: BanachGP(per_sample=True)(c, REAL, FAKE, **k),
    "BanachR1": lambda c, **k: BanachR1()(c, REAL, **k),
    "BanachR2": lambda c, **k: BanachR2()(c, REAL, FAKE, **k),
    "BanachR1R2": lambda c, **k: BanachR1R2()(c, REAL, FAKE, **k),
    "FiniteDifferenceGP": lambda c, **k: FiniteDifferenceGP()(c, REAL, FAKE, **k),
    "ApproxR1": lambda c, **k: ApproxR1()(c, REAL, **k),
    "ApproxR1R2": lambda c, **k: ApproxR1R2("sobolev:s=-1.5")(c, REAL, FAKE, **k),
    "Lazy": lambda c, **k: Lazy(BanachR1(), every=2)(c, REAL, **k),
    "Subsampled": lambda c, **k: Subsampled(BanachGP(), fraction=0.5)(c, REAL, FAKE, **k),
    "estimate_lipschitz": lambda c, **k: estimate_lipschitz(
        c, "l2", REAL, steps=1, pairwise=False, critic_kwargs=k
    ),
    # steps=0: the pairwise bound on the samples alone (the ascent's points would double the
    # batch, which per-sample keyword arguments do not follow)
    "estimate_lipschitz pairwise": lambda c, **k: estimate_lipschitz(
        c, "l2", REAL, steps=0, critic_kwargs=k
    ),
    "CTransformLoss": lambda c, **k: CTransformLoss()(c, REAL, FAKE, **k),
    "input_gradient": lambda c, **k: input_gradient(c, REAL, critic_kwargs=k),
}
GRADIENT_FREE = {"FiniteDifferenceGP", "ApproxR1", "ApproxR1R2", "CTransformLoss"}


class Detached(nn.Module):
    """A critic whose scores are cut from the graph (NumPy in the middle, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = ConvCritic()

    def forward(self, x: Tensor, **kwargs: Any) -> Tensor:
        return self.net(x).detach()


class Labelled(nn.Module):
    """A conditional critic: ``labels`` pick a per-class offset."""

    def __init__(self) -> None:
        super().__init__()
        self.net = ConvCritic()
        self.offset = nn.Embedding(10, 1)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        return self.net(x).flatten() + self.offset(labels).flatten()


def tupled(x: Tensor, **kwargs: Any) -> tuple[Tensor, Tensor]:
    return NET(x), x


def elsewhere(x: Tensor, **kwargs: Any) -> Tensor:
    return NET(x).to("meta")


def complex_scores(x: Tensor, **kwargs: Any) -> Tensor:
    return NET(x).to(torch.complex64)


def through_numpy(x: Tensor, **kwargs: Any) -> Tensor:
    return torch.from_numpy(NET(x).detach().numpy())


WRONG_KINDS = [
    (tupled, TypeError, "the output of the critic tupled must be a tensor of scores"),
    (tupled, TypeError, "can be passed as lambda x: critic(x)[0]"),
    (elsewhere, ValueError, "the output of the critic elsewhere is on meta, its input on cpu"),
    (complex_scores, TypeError, "complex_scores must be real floating-point scores"),
    (complex_scores, TypeError, "complex values are not scores"),
]


@pytest.mark.parametrize(("critic", "error", "words"), WRONG_KINDS)
@pytest.mark.parametrize("entry", list(CRITIC_ENTRIES))
def test_a_critic_output_of_the_wrong_kind_is_named(
    entry: str, critic: Callable[..., Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as info:
        CRITIC_ENTRIES[entry](critic)
    assert words in str(info.value)


@pytest.mark.parametrize("entry", list(CRITIC_ENTRIES))
def test_a_detached_critic_is_named(entry: str) -> None:
    """Gradient penalties see that the output does not depend on the input; the
    gradient-free entry points see that it is cut from the critic's parameters."""
    with pytest.raises(ValueError) as info:
        CRITIC_ENTRIES[entry](Detached())
    expected = (
        "is detached from its parameters"
        if entry in GRADIENT_FREE
        else "does not depend on its input"
    )
    assert f"the output of the critic Detached {expected}" in str(info.value)


def test_a_frozen_critic_is_not_called_detached() -> None:
    """The generator's step of the c-transform evaluates a critic whose parameters are frozen:
    its output need not require grad."""
    critic = ConvCritic().requires_grad_(False)
    fake = FAKE.clone().requires_grad_(True)
    CTransformLoss()(critic, REAL, fake).backward()
    assert fake.grad is not None


@pytest.mark.parametrize("entry", sorted(set(CRITIC_ENTRIES) - GRADIENT_FREE))
def test_a_critic_that_reads_its_input_with_numpy_is_named(entry: str) -> None:
    """Under torch.func (the default engine) torch says only ``Cannot access data pointer of
    Tensor that doesn't have storage``; under autograd the output is an array."""
    with pytest.raises((RuntimeError, TypeError, ValueError)) as info:
        CRITIC_ENTRIES[entry](through_numpy)
    message = str(info.value)
    assert "reads the values of its input outside torch" in message or (
        "through_numpy" in message and "does not depend on its input" in message
    ), message


@pytest.mark.parametrize("entry", list(CRITIC_ENTRIES))
def test_a_keyword_argument_on_another_device_is_named(entry: str) -> None:
    labels = torch.zeros(B, dtype=torch.long, device="meta")
    with pytest.raises(ValueError) as info:
        CRITIC_ENTRIES[entry](Labelled(), labels=labels)
    assert "the critic's keyword argument labels is on meta, its input on cpu" in str(info.value)
    assert "labels.to('cpu')" in str(info.value)
    CRITIC_ENTRIES[entry](Labelled(), labels=torch.arange(B))  # on the right device: fine


# --- samplers and pairs ----------------------------------------------------------------

SAMPLER_ENTRIES: dict[str, Callable[[Callable[..., Any]], object]] = {
    "BanachGP": lambda s: BanachGP(sampling=s)(NET, REAL, FAKE),
    "BanachGP autograd": lambda s: BanachGP(sampling=s, engine="autograd")(NET, REAL, FAKE),
    "Lazy": lambda s: Lazy(BanachGP(sampling=s), every=3)(NET, REAL, FAKE),
    "Subsampled": lambda s: Subsampled(BanachGP(sampling=s), fraction=0.5)(NET, REAL, FAKE),
    "FiniteDifferenceGP pairs": lambda s: FiniteDifferenceGP(pairs=lambda r, f: (s(r, f), s(f, r)))(
        NET, REAL, FAKE
    ),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("entry", list(SAMPLER_ENTRIES))
def test_points_in_another_dtype_are_named(entry: str, dtype: torch.dtype) -> None:
    """Before: ``mat1 and mat2 must have the same dtype`` from inside the critic."""

    def cast(real: Tensor, fake: Tensor | None) -> Tensor:
        return real.to(dtype)

    with pytest.raises(ValueError) as info:
        SAMPLER_ENTRIES[entry](cast)
    message = str(info.value)
    named = "sampler test_points_in_another_dtype_are_named.<locals>.cast" in message
    assert named or "the pairs callable" in message, message
    assert "must be points [B', 3, 8, 8] like real's samples, float32 on cpu" in message
    assert f"got a {str(dtype).removeprefix('torch.')} tensor of shape [" in message


# --- custom norms ----------------------------------------------------------------------


class Custom(L2):
    """L2 whose results are spoilt in one of several ways."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def _spoil(self, v: Tensor) -> object:
        return {
            "column": lambda: v[:, None],
            "float64": lambda: v.double(),
            "integer": lambda: v.long(),
            "list": lambda: v.tolist(),
            "scalar": lambda: v.sum(),
            "detached": lambda: v.detach(),
        }[self.how]()

    def _norm(self, x: Tensor) -> Tensor:
        return self._spoil(super()._norm(x))  # type: ignore[return-value]

    def _dual(self, g: Tensor) -> Tensor:
        return self._spoil(super()._dual(g))  # type: ignore[return-value]

    def _dual_squared(self, g: Tensor) -> Tensor:
        return self._spoil(super()._dual_squared(g))  # type: ignore[return-value]

    def lp_embedding(self, x: Tensor) -> tuple[Tensor, float] | None:
        return None


NORM_ENTRIES: dict[str, Callable[[Custom], object]] = {
    "BanachGP": lambda n: BanachGP(n)(NET, REAL, FAKE),
    "BanachGP auto (calibration)": lambda n: BanachGP(n, lam="auto", gamma="auto").calibrate(
        [REAL]
    ),
    "BanachR1": lambda n: BanachR1(n)(NET, REAL),
    "BanachR1R2": lambda n: BanachR1R2(n)(NET, REAL, FAKE),
    "FiniteDifferenceGP": lambda n: FiniteDifferenceGP(n)(NET, REAL, FAKE),
    "estimate_lipschitz": lambda n: estimate_lipschitz(NET, n, REAL, steps=1),
    "CTransformLoss": lambda n: CTransformLoss(n)(NET, REAL, FAKE),
    "R3GAN adapter": lambda n: ZeroCenteredGradientPenalty(n)(*scored()),
}
# Distances are taken without gradient, so a detached norm cannot be told from a good one.
NO_GRADIENT = {"BanachGP auto (calibration)", "FiniteDifferenceGP", "CTransformLoss"}


def scored() -> tuple[Tensor, Tensor]:
    """``(inputs, outputs)`` as the hosts hand them over: inputs requiring grad."""
    x = REAL.clone().requires_grad_(True)
    return x, NET(x).flatten()


@pytest.mark.parametrize("how", ["column", "float64", "integer", "list", "scalar"])
@pytest.mark.parametrize("entry", list(NORM_ENTRIES))
def test_a_norm_that_returns_the_wrong_kind_is_named(entry: str, how: str) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        NORM_ENTRIES[entry](Custom(how))
    message = str(info.value)
    assert message.startswith("Custom._"), message
    assert "must return one value per sample, a float32 tensor of shape [4] on cpu" in message


@pytest.mark.parametrize("entry", sorted(set(NORM_ENTRIES) - NO_GRADIENT))
def test_a_norm_that_detaches_is_named(entry: str) -> None:
    with pytest.raises(ValueError) as info:
        NORM_ENTRIES[entry](Custom("detached"))
    assert "returned values that do not depend on its argument" in str(info.value)


def test_a_bad_lp_embedding_is_named() -> None:
    class Embedded(L2):
        def lp_embedding(self, x: Tensor) -> tuple[Tensor, float] | None:
            return x.flatten(1).double(), 2.0

    with pytest.raises(ValueError) as info:
        CTransformLoss(Embedded())(NET, REAL, FAKE)
    assert "Embedded.lp_embedding must return T x as a float32 tensor [4, N] on cpu" in str(
        info.value
    )


# --- what hosts hand to the integrations -------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "error", "words"),
    [
        (lambda x: (NET(x), x), TypeError, "Critics) must be a tensor of scores"),
        (lambda x: NET(x).flatten()[:2], ValueError, "must hold one score per sample"),
        (lambda x: NET(x.detach()).flatten(), ValueError, "does not depend on its input"),
    ],
)
def test_a_host_output_of_the_wrong_kind_is_named(
    outputs: Callable[[Tensor], Any], error: type[Exception], words: str
) -> None:
    """Before: ``'tuple' object has no attribute 'sum'`` or torch's ``One of the
    differentiated Tensors appears to not have been used in the graph``."""
    x = REAL.clone().requires_grad_(True)
    with pytest.raises(error) as info:
        ZeroCenteredGradientPenalty()(x, outputs(x))
    assert "the output of the discriminator (Critics)" in str(info.value) and words in str(
        info.value
    )


# --- cost: metadata only ------------------------------------------------------------------


def test_the_checks_add_no_forward_and_no_host_synchronisation() -> None:
    """One forward per call (the vjp's), and no value is read on the host: the checks look
    at types, shapes, dtypes, devices and requires_grad only."""
    critic = Calls(NET)
    penalty = BanachGP(check_finite=False)
    reads: list[str] = []

    class Reads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func is torch.ops.aten._local_scalar_dense.default:
                reads.append(str(func))
            return func(*args, **(kwargs or {}))

    with Reads():
        penalty(critic, REAL, FAKE)
    assert critic.calls == 1 and reads == []


def test_the_checks_work_inside_torch_func_transforms() -> None:
    """A penalty differentiated with torch.func over the critic's parameters (functional
    training loops do): the critic's output and the norm's results are functorch tensors
    without storage there."""
    params = {k: v.detach() for k, v in NET.named_parameters()}

    def penalty_of(p: dict[str, Tensor]) -> Tensor:
        def critic(x: Tensor) -> Tensor:
            out: Tensor = torch.func.functional_call(NET, p, (x,))
            return out

        return BanachR1("sobolev:s=1")(critic, REAL)

    grads = torch.func.grad(penalty_of)(params)
    value = BanachR1("sobolev:s=1")(NET, REAL)
    expected = torch.autograd.grad(value, list(NET.parameters()), allow_unused=True)
    for (name, g), e in zip(grads.items(), expected, strict=True):
        # the last bias moves every score alike: it has no input gradient to penalise
        torch.testing.assert_close(g, torch.zeros_like(g) if e is None else e, msg=name)
