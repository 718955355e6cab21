"""A transformer critic that cannot be differentiated twice, regularised in W^{-3/2,2}
without a double backward.

The critic is a small ViT over the 2x2 patches of scikit-learn's 8x8 digits: a patch
embedding, two pre-norm blocks of multi-head self-attention through
``F.scaled_dot_product_attention`` (whose fused CPU and FlashAttention kernels have no double
backward) and an MLP whose activation is a custom ``torch.autograd.Function`` with a
``@once_differentiable`` backward (a stand-in for a fused kernel), mean pooling, one score.

1. An exact penalty, ``BanachR1`` in ``W^{-3/2,2}``, refuses the critic when it is called,
   naming the cause and the derivative-free alternative: the script prints the message.
2. ``ApproxR1`` in the same norm (one word changed) trains it against lipreg's DCGAN
   generator with the non-saturating loss, reusing the loss's scores on the real batch (one
   extra forward pass per step). The script prints the penalty, its standard error and the
   digits FID of the generator (lipreg's download-free digits metric; lower is better) as
   it trains.

    python examples/transformer_critic.py                # about two minutes on one CPU core
    python examples/transformer_critic.py --steps 20     # a few seconds
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from lipreg import ApproxR1, BanachR1, Sobolev, ns_critic_loss, ns_generator_loss
from lipreg.train.data.embedded import digits
from lipreg.train.metrics.digits import DigitsQuality
from lipreg.train.models import DCGANGenerator


class FusedGELU(torch.autograd.Function):
    """GELU computed as one op whose backward is first-order only, as a fused kernel's is:
    differentiating it twice raises."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return F.gelu(x, approximate="tanh")

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(inputs[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (dx,) = torch.autograd.grad(F.gelu(x, approximate="tanh"), x, grad)
        return dx


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, then an MLP with the fused activation."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, N, d / heads]
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(attended)
        activated = FusedGELU.apply(self.up(self.norm2(x)))  # type: ignore[no-untyped-call]
        out: Tensor = x + self.down(activated)
        return out


class ViTCritic(nn.Module):
    """``[B, 1, 8, 8] -> [B]``: 16 patches of 2x2 pixels, ``depth`` blocks, mean pooling."""

    def __init__(self, dim: int = 32, depth: int = 2, heads: int = 4, patch: int = 2) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.position = nn.Parameter(torch.randn(1, (8 // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        out: Tensor = self.head(self.norm(self.blocks(tokens)).mean(1)).squeeze(1)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=600, help="training steps (%(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (%(default)s)")
    parser.add_argument("--gamma", type=float, default=1.0, help="R1 weight (%(default)s)")
    parser.add_argument("--sigma", type=float, default=0.03, help="perturbation (%(default)s)")
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam's step (%(default)s)")
    parser.add_argument("--eval-samples", type=int, default=500, help="(%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small models: one thread is fastest, and spares shared cores
    torch.manual_seed(args.seed)
    data, _ = digits("train")  # [1198, 1, 8, 8] in [-1, 1]
    z_dim = 32
    critic = ViTCritic()
    gen = DCGANGenerator(z_dim=z_dim, channels=32, out_channels=1, image_size=8)
    norm = Sobolev(s=-1.5)
    real = data[: args.batch]

    print("1. The exact R1 in W^{-3/2,2} on this critic:")
    try:
        BanachR1(norm, gamma=args.gamma)(critic, real)
    except RuntimeError as e:
        print(f"   RuntimeError: {e}\n")
    else:
        raise SystemExit("the exact penalty accepted a critic it cannot differentiate twice")

    penalty = ApproxR1(norm, gamma=args.gamma, sigma=args.sigma)
    print(f"2. {penalty} trains it:")
    opt_d = torch.optim.Adam(critic.parameters(), lr=args.lr, betas=(0.0, 0.99))
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=(0.0, 0.99))
    quality = DigitsQuality()

    def fid() -> float:
        gen.eval()  # batch norm with its running statistics
        with torch.no_grad():
            value = quality(gen(torch.randn(args.eval_samples, z_dim))).fid
        gen.train()
        return value

    print(f"   step {0:5d}: digits FID {fid():7.2f}")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        real = data[torch.randint(len(data), (args.batch,))]
        with torch.no_grad():
            fake = gen(torch.randn(args.batch, z_dim))
        d_real, d_fake = critic(real), critic(fake)
        d_loss = ns_critic_loss(d_real, d_fake) + penalty(critic, real, d_real=d_real)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = ns_generator_loss(critic(gen(torch.randn(args.batch, z_dim))))
        opt_g.zero_grad()
        g_loss.backward()  # type: ignore[no-untyped-call]
        opt_g.step()
        if step % max(1, args.steps // 4) == 0 or step == args.steps:
            stats = penalty.stats
            assert stats is not None
            print(
                f"   step {step:5d}: critic loss {d_loss.item():6.3f}, penalty "
                f"{stats.penalty.item():.4f} +- {stats.standard_error.item():.4f}, "
                f"digits FID {fid():7.2f}"
            )
    print(f"   {args.steps} steps in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
