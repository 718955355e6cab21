"""docs/img/fashion_validation.png and the validation table of the Fashion-MNIST metric.

Scores sets whose quality is known against the 10,000 test images: 10,000 training images
(real), uniform noise, the training images with additive Gaussian noise, with a
checkerboard of zero block means, blurred by a Gaussian of increasing width, with their
pixels shuffled, of one class, and with classes dropped. Prints the classifier's test
accuracy and the Markdown table shown on docs/metrics.md, and draws the Fashion-MNIST FID of
each family with example images. Needs the data (Debian's dataset-fashion-mnist, the cache,
or --data-root).

    python docs/scripts/fashion_validation.py [--out docs/img] [--data-root DIR] [--size N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _common import IMG, blur  # first: selects matplotlib's Agg backend
from matplotlib import pyplot as plt

from lipreg.train.data.base import from_uint8
from lipreg.train.data.fashion_mnist import CLASSES, read_fashion_mnist
from lipreg.train.metrics.fashion import FashionQuality
from lipreg.train.metrics.fashion_net import accuracy
from lipreg.train.plots import image_grid

SIGMAS = (0.5, 1.0, 1.5, 2.0)  # blur, in pixels
NOISE = (0.02, 0.05, 0.1, 0.2)  # additive Gaussian noise, in units of the [-1, 1] range
CHECKER = (0.05, 0.1, 0.2)  # checkerboard amplitude
DROPPED = (1, 2, 4, 6, 8, 9)  # classes 0..k-1 removed


def checkerboard(amplitude: float) -> torch.Tensor:
    """``[1, 1, 28, 28]``: ``+-amplitude`` alternating pixel by pixel (2x2 block means 0)."""
    parity = (torch.arange(28)[:, None] + torch.arange(28)).remainder(2)
    return (2 * parity - 1).float()[None, None] * amplitude


def families(
    images: torch.Tensor, labels: torch.Tensor
) -> dict[str, list[tuple[str, torch.Tensor]]]:
    gen = torch.Generator().manual_seed(0)
    n = images.shape[0]
    shuffled = torch.stack([x.flatten()[torch.randperm(784, generator=gen)] for x in images])
    return {
        "real": [("training images (real)", images)],
        "uniform noise": [("uniform noise", torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1)],
        "noise": [
            (
                f"Gaussian noise sigma {s:g}",
                (images + s * torch.randn(images.shape, generator=gen)).clamp(-1, 1),
            )
            for s in NOISE
        ],
        "checkerboard": [
            (f"checkerboard +-{a:g}", (images + checkerboard(a)).clamp(-1, 1)) for a in CHECKER
        ],
        "blur": [(f"blur sigma {s:g} px", blur(images, s)) for s in SIGMAS],
        "shuffled": [("pixels shuffled", shuffled.view_as(images))],
        "one class": [(f"only {CLASSES[c]}", images[labels == c]) for c in (0, 1, 8)],
        "dropped": [
            (f"{k} class{'es' if k > 1 else ''} dropped", images[labels >= k]) for k in DROPPED
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=IMG, help="folder for the PNG (docs/img)")
    parser.add_argument("--data-root", type=Path, help="the folder of the IDX files")
    parser.add_argument("--size", type=int, default=10_000, help="training images per set (10000)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    quality = FashionQuality(root=args.data_root)
    test_images, test_labels = read_fashion_mnist(args.data_root, train=False)
    print(f"classifier test accuracy: {accuracy(quality.net, test_images, test_labels):.4f}")
    train, labels = read_fashion_mnist(args.data_root)
    keep = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))[: args.size]
    images, labels = from_uint8(train[keep]), labels[keep]
    results: dict[str, list[tuple[str, float]]] = {}
    print("| set | Fashion-MNIST FID | classes | class KL | confidence |")
    print("|---|---:|---:|---:|---:|")
    sets = families(images, labels)
    for family, members in sets.items():
        results[family] = []
        for name, x in members:
            s = quality(x)
            results[family].append((name, s.fid))
            print(f"| {name} | {s.fid:.2f} | {s.classes} | {s.kl:.3f} | {s.confidence:.3f} |")
    real = results["real"][0][1]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    for family, levels, style in (
        ("noise", NOISE, "o-"),
        ("checkerboard", CHECKER, "s--"),
        ("blur", [s / 10 for s in SIGMAS], "^-."),
    ):
        fids = [fid for _, fid in results[family]]
        axes[0].plot((0.0, *levels), (real, *fids), style, label=family)
    axes[0].set(
        xlabel="noise sigma / checkerboard amplitude / blur sigma (px) / 10",
        ylabel="Fashion-MNIST FID",
        title="pixel-level degradations: FID rises",
    )
    dropped = [fid for _, fid in results["dropped"]]
    axes[1].plot((0, *DROPPED), (real, *dropped), "o-")
    axes[1].set(
        xlabel="classes dropped (0..k-1 removed)",
        ylabel="Fashion-MNIST FID",
        title="missing classes: FID rises",
    )
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend()
    rows = [images[:8], sets["noise"][2][1][:8], sets["checkerboard"][1][1][:8]]
    rows += [sets["blur"][1][1][:8], sets["shuffled"][0][1][:8]]
    grid = image_grid(torch.cat(rows), nrow=8)
    axes[2].imshow(grid[:, :, 0].numpy(), cmap="gray", interpolation="nearest")
    axes[2].set_title("real; noise 0.1; checkerboard 0.1; blur 1 px; shuffled")
    axes[2].axis("off")
    fig.savefig(args.out / "fashion_validation.png", dpi=110)


if __name__ == "__main__":
    main()
