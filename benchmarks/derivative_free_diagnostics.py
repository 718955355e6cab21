"""How close the derivative-free R2 (lipreg.ApproxR2) is to the exact one (BanachR2) on a
trained critic: the value's bias and spread, and the parameter gradient's direction and size.

The critic is trained as in a one-seed pilot of the method: the digits preset with the
non-saturating loss and exact R2 in L^2 with gamma 10 (the method race's "R2"), for
``--steps`` generator steps (in this process; ``--critic`` reuses a saved state). Then, on
one real and one generated batch of the trainer's size (64):

- value: per estimator (one-sided, antithetic, several draws) and ``sigma``, the ratio of
  the mean estimate of ``E ||dD(fake)||_2^2`` over ``--repeats`` calls to the exact value
  (its bias) and the relative standard deviation of one call's penalty (its noise);
- parameter gradient: the cosine and the norm ratio of one call's gradient to the exact
  penalty's (what one step sees), the cosine of their mean over the repeats (the
  gradient's bias), and the same cosine for the whole critic loss (non-saturating loss plus
  penalty), which is what the optimiser follows;
- Adam (beta1 = 0 in the preset, so no momentum averages the noise): the mean over
  parameters of ``sqrt(E g_approx^2 / g_exact^2)`` of the whole loss's gradient, by which the
  noise inflates Adam's second moment and so shrinks the step of the loss's own gradient.

    python benchmarks/derivative_free_diagnostics.py                  # about 2 minutes
    python benchmarks/derivative_free_diagnostics.py --steps 5 --repeats 4 --quick   # seconds
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from pathlib import Path

import _options
import torch
from torch import Tensor, nn

from lipreg import L2, ApproxR2, BanachR2, Norm, Sobolev, ns_critic_loss
from lipreg.norms import parse_norm

PILOT = {"norm": "l2", "lam": 10.0, "gamma": 10.0, "penalty": "r2", "loss": "ns"}
"""The pilot's method: the race's R2 (the digits preset, non-saturating loss, gamma 10)."""

ESTIMATORS: dict[str, dict[str, object]] = {
    "one-sided, 1 draw": {},
    "one-sided, 4 draws": {"draws": 4},
    "antithetic, 1 pair": {"antithetic": True},
}
SIGMAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def trained_critic(steps: int, quick: bool, path: Path | None) -> tuple[nn.Module, Tensor, Tensor]:
    """The pilot's critic after ``steps`` generator steps (or loaded from ``path`` when it
    exists, saved there otherwise), with one real batch and one generated batch."""
    from lipreg.train.loop import Trainer

    config = _options.base_config(**PILOT, **_options.study_overrides(steps, 1, quick))
    trainer = Trainer(config)
    if path is not None and path.exists():
        trainer.d.load_state_dict(torch.load(path))
    else:
        while trainer.step < steps:
            trainer.iteration()
        if path is not None:
            torch.save(trainer.d.state_dict(), path)
    real = next(trainer.batches)
    with torch.no_grad():
        fake = trainer.g(torch.randn(real.shape[0], trainer.z_dim))
    trainer.close()
    return trainer.d.eval(), real, fake


def flat(grads: tuple[Tensor | None, ...], params: list[nn.Parameter]) -> Tensor:
    pairs = zip(grads, params, strict=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in pairs])


def gradient(loss: Tensor, params: list[nn.Parameter]) -> Tensor:
    return flat(torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True), params)


def cosine(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def measure(
    critic: nn.Module, real: Tensor, fake: Tensor, norm: Norm, repeats: int, gamma: float
) -> list[str]:
    """The table's rows for one norm."""
    params = list(critic.parameters())
    exact = BanachR2(norm, gamma=gamma)

    def loss(penalty: Callable[..., Tensor]) -> tuple[Tensor, Tensor]:
        d_real, d_fake = critic(real), critic(fake)
        value = penalty(critic, real, fake, d_fake=d_fake)
        return value, ns_critic_loss(d_real, d_fake) + value

    exact_value, exact_loss = loss(lambda c, r, f, d_fake: exact(c, r, f))
    exact_number = exact_value.item()
    g_pen = gradient(exact_value, params)
    g_loss = gradient(exact_loss, params)
    rows = []
    for name, options in ESTIMATORS.items():
        for sigma in SIGMAS:
            approx = ApproxR2(norm, gamma=gamma, sigma=sigma, **options)  # type: ignore[arg-type]
            values, pens, losses = [], [], []
            for _ in range(repeats):
                value, total = loss(approx)
                values.append(value.item())
                pens.append(gradient(value, params))
                losses.append(gradient(total, params))
            pen, tot = torch.stack(pens), torch.stack(losses)
            inflation = (tot.square().mean(0) / g_loss.square().clamp_min(1e-30)).sqrt()
            rows.append(
                f"| {norm.space} | {name} | {sigma:g} "
                f"| {statistics.mean(values) / exact_number:.3f} "
                f"| {statistics.stdev(values) / exact_number:.3f} "
                f"| {statistics.mean(cosine(p, g_pen) for p in pen):.3f} "
                f"| {statistics.mean(float(p.norm() / g_pen.norm()) for p in pen):.2f} "
                f"| {cosine(pen.mean(0), g_pen):.3f} "
                f"| {statistics.mean(cosine(t, g_loss) for t in tot):.3f} "
                f"| {float(inflation.median()):.2f} |"
            )
    return rows


def lipschitz_rows(
    critic: nn.Module, fake: Tensor, norm: Norm, repeats: int, sigma: float = 0.03
) -> list[str]:
    """Two candidates for a derivative-free Lipschitz penalty, on the fake batch.

    - quotients ``|D(x + h) - D(x)| / ||h||_B`` along dual-Gaussian directions ``h``: their
      mean over the batch against the mean local Lipschitz constant ``||dD(x)||_{B*}`` (a
      random direction sees about ``||dD||_{B*} / sqrt(n)``, not the constant);
    - the U-statistic ``(S_1 / gamma^2 - 1)(S_2 / gamma^2 - 1)`` of two independent estimates,
      unbiased for ``(||dD||_{B*}^2 / gamma^2 - 1)^2``: the cosine and norm ratio of its
      parameter gradient to the exact one's, with gamma the median dual norm (the penalty's
      optimum) and half of it.
    """
    from lipreg import estimate_dual_squared, input_gradient

    params = list(critic.parameters())
    x = fake.detach()
    squared = norm.dual_squared(input_gradient(critic, x), at=x)
    dual = squared.detach().sqrt()
    with torch.no_grad():
        h = norm.dual_gaussian(x)
        h = h * (sigma / norm.dual_gaussian_variance(x).sqrt()).view(-1, 1, 1, 1)
        quotient = (critic(x + h) - critic(x)).abs() / norm.norm(h)
    n = x[0].numel()
    seen = float(quotient.mean() / dual.mean())
    rows = [
        f"| {norm.space} | quotient along h / dual norm | {seen:.4f}"
        f" | sqrt(2 / (pi n)) = {math.sqrt(2 / (math.pi * n)):.4f} |"
    ]
    for label, gamma in (
        ("median", float(dual.median())),
        ("half the median", float(dual.median()) / 2),
    ):
        exact = gradient(((squared / gamma**2 - 1) ** 2).mean(), params)
        cosines, ratios = [], []
        for _ in range(repeats):
            first, second = (estimate_dual_squared(critic, x, norm, sigma) for _ in range(2))
            value = ((first / gamma**2 - 1) * (second / gamma**2 - 1)).mean()
            g = gradient(value, params)
            cosines.append(cosine(g, exact))
            ratios.append(float(g.norm() / exact.norm()))
        rows.append(
            f"| {norm.space} | U-statistic GP, gamma = {label} | cos {statistics.mean(cosines):.3f}"
            f" | norm ratio {statistics.mean(ratios):.1f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="generator steps (%(default)s)")
    parser.add_argument("--repeats", type=int, default=32, help="calls per cell (%(default)s)")
    parser.add_argument("--critic", type=Path, help="reuse (or save) the trained critic here")
    parser.add_argument(
        "--norms", nargs="+", default=["l2", "sobolev:s=-1.5"], help="(%(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="the studies' tiny task")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    critic, real, fake = trained_critic(args.steps, args.quick, args.critic)
    data_rms = float(real.square().mean().sqrt())
    data_std = float(real.std())
    print(
        f"critic after {args.steps} steps of the pilot's R2; data: RMS {data_rms:.3f}, "
        f"std {data_std:.3f} per entry; {args.repeats} calls per row\n"
    )
    print(
        "| norm | estimator | sigma | mean / exact | std / exact | cos(step, exact) "
        "| norm ratio | cos(mean, exact) | cos(loss step, exact loss) | Adam v inflation |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in args.norms:
        norm = parse_norm(spec)
        assert isinstance(norm, (L2, Sobolev))
        for row in measure(critic, real, fake, norm, args.repeats, PILOT["gamma"]):  # type: ignore[arg-type]
            print(row)
    print("\nDerivative-free Lipschitz penalties, sigma 0.03\n")
    print("| norm | candidate | measured | for comparison |\n| --- | --- | ---: | ---: |")
    for spec in args.norms:
        for row in lipschitz_rows(critic, fake, parse_norm(spec), args.repeats):
            print(row)


if __name__ == "__main__":
    main()
