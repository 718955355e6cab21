"""docs/img/digits_validation.png and the validation table of the digits quality metric.

Scores sets whose quality is known against the 599 held-out digits: the 1,198 training
digits (real), uniform noise, increasing Gaussian blur of the training digits, one-class sets
and sets with classes dropped; at the digits' own 8x8 and at 16x16 (bicubic upsampling, as
the trainer's ``--image-size 16``). Prints the Markdown table shown on docs/metrics.md and
draws the digits FID of each family with example images.

    python docs/scripts/digits_validation.py [--out docs/img]
"""

from __future__ import annotations

import torch
from _common import blur, parse_out  # first: selects matplotlib's Agg backend
from matplotlib import pyplot as plt

from lipreg.train.data.base import resize
from lipreg.train.data.embedded import digits
from lipreg.train.metrics.digits import DigitsQuality
from lipreg.train.plots import image_grid

SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0)  # blur, in pixels of the 8x8 digits
DROPPED = (1, 2, 4, 6, 8, 9)  # classes 0..k-1 removed


def families(side: int) -> dict[str, list[tuple[str, torch.Tensor]]]:
    images, labels = digits("train")
    images = images if side == 8 else resize(images, side)
    gen = torch.Generator().manual_seed(0)
    scale = side / 8
    return {
        "real": [("training digits (real)", images)],
        "noise": [("uniform noise", torch.rand(1198, 1, side, side, generator=gen) * 2 - 1)],
        "blur": [(f"blur sigma {s:g} px", blur(images, s * scale)) for s in SIGMAS],
        "one class": [(f"only {c}s", images[labels == c]) for c in (0, 1, 7)],
        "dropped": [(f"{k} classes dropped", images[labels >= k]) for k in DROPPED],
    }


def main() -> None:
    out = parse_out(__doc__ or "")
    quality = DigitsQuality()
    results: dict[int, dict[str, list[tuple[str, float]]]] = {}
    print("| set | side | digits FID | classes | class KL | confidence |")
    print("|---|---:|---:|---:|---:|---:|")
    for side in (8, 16):
        results[side] = {}
        for family, sets in families(side).items():
            results[side][family] = []
            for name, x in sets:
                s = quality(x)
                results[side][family].append((name, s.fid))
                print(
                    f"| {name} | {side} | {s.fid:.1f} | {s.classes} | {s.kl:.3f} | "
                    f"{s.confidence:.3f} |"
                )
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for side, style in ((8, "o-"), (16, "s--")):
        blurred = [fid for _, fid in results[side]["blur"]]
        real = results[side]["real"][0][1]
        axes[0].plot((0.0, *SIGMAS), (real, *blurred), style, label=f"{side}x{side}")
        dropped = [fid for _, fid in results[side]["dropped"]]
        axes[1].plot((0, *DROPPED), (real, *dropped), style, label=f"{side}x{side}")
    axes[0].set(xlabel="Gaussian blur sigma (pixels of the 8x8 digit)", ylabel="digits FID")
    axes[1].set(xlabel="classes dropped (0..k-1 removed)", ylabel="digits FID")
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("blur: FID rises monotonically")
    axes[1].set_title("missing classes: FID rises monotonically")
    images = resize(digits("train")[0][:8], 16)
    rows = [images, blur(images, 2.0), blur(images, 4.0)]
    gen = torch.Generator().manual_seed(0)
    rows.append(torch.rand(8, 1, 16, 16, generator=gen) * 2 - 1)
    grid = image_grid(torch.cat(rows), nrow=8)
    axes[2].imshow(grid[:, :, 0].numpy(), cmap="gray", interpolation="nearest")
    axes[2].set_title("real; blur 1 and 2 px (of 8x8); noise")
    axes[2].axis("off")
    fig.savefig(out / "digits_validation.png", dpi=110)


if __name__ == "__main__":
    main()
