"""A folder of images, decoded lazily with PIL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lipreg.train.data.base import TrainingData, from_uint8

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class ImageFolder(TrainingData):
    """Every image under ``root`` (recursively, sorted paths), decoded lazily with PIL.

    Each image is converted to RGB, resized (bicubic) so that its shorter side is
    ``image_size``, centre-cropped to ``image_size`` x ``image_size`` and scaled to
    ``[-1, 1]``: items ``[3, image_size, image_size]``.
    """

    def __init__(self, root: Path, image_size: int, files: list[Path]) -> None:
        super().__init__("folder", "image", (3, image_size, image_size))
        self.root = root
        self.image_size = image_size
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise OSError(
                f"cannot read image {path} of the folder data set ({err}); remove or repair it"
            ) from err
        return from_uint8(_resize_crop(rgb, self.image_size))


def image_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root} does not exist or is not a directory; pass a directory "
            f"holding images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(
            f"image folder {root} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}, "
            "recursively)"
        )
    return files


def _resize_crop(img: Any, side: int) -> Tensor:
    """``[3, side, side]`` uint8: shorter side resized to ``side`` (bicubic), centre crop."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    scale = side / min(w, h)
    # The shorter side lands on `side` exactly; the longer one is rounded.
    new = (side, max(side, round(h * scale))) if w <= h else (max(side, round(w * scale)), side)
    if new != (w, h):
        img = img.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - side) // 2, (new[1] - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
