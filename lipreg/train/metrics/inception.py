"""IS, FID and KID through torch-fidelity's Inception-v3, from a weights file (its standard
weights come from :func:`~lipreg.train.metrics.fetch_inception_weights`)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lipreg._validation import check_batch
from lipreg.train.data.base import check_int, to_uint8
from lipreg.train.metrics.features import fid_from_features, inception_score, kid


def inception_unavailable(weights: str | Path | None = None) -> str | None:
    """``None`` if :func:`inception_metrics` can run: torch-fidelity imports and ``weights``,
    if given, is a file (``None`` stands for torch-fidelity's standard weights, fetched by
    :func:`~lipreg.train.metrics.fetch_inception_weights`). Otherwise one line saying why
    IS/FID/KID are skipped and how to get them."""
    if weights is not None and not Path(weights).is_file():
        return f"IS/FID/KID skipped: the Inception weights file {weights} does not exist"
    try:
        import torch_fidelity  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name == "torch_fidelity":
            return (
                "IS/FID/KID skipped: torch-fidelity is not installed; pip install "
                "torch-fidelity (with a torchvision built for your torch) to get them, or pass "
                "--no-inception"
            )
        return _broken(err)
    except Exception as err:  # e.g. a torchvision built for another torch
        return _broken(err)
    return None


def _broken(err: BaseException) -> str:
    return _one_line(
        f"IS/FID/KID skipped: torch-fidelity is installed but cannot be imported "
        f"({type(err).__name__}: {err}); it needs a torchvision built for this torch "
        f"{torch.__version__}, and the torchvision pip takes from PyPI does not import beside "
        "a CPU-only torch (with torch 2.13.0+cpu it takes 0.28.0, which fails): install torch "
        "and torchvision as a pair that imports, e.g. pip install torch==2.14.1 "
        "torchvision==0.29.1 on x86_64 (a CUDA build, which runs on the CPU) or pip install "
        "torch==2.9.1 torchvision==0.24.1 on aarch64, or pass --no-inception"
    )


def _one_line(text: str) -> str:
    """``text`` with every run of whitespace, newlines included, turned into one space."""
    return " ".join(text.split())


def _to_uint8_rgb(images: Tensor) -> Tensor:
    """``[N, 3, H, W]`` uint8 from images in ``[-1, 1]`` (grey images repeated to RGB)."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return to_uint8(images.detach().float())


def inception_metrics(
    real: Tensor,
    fake: Tensor,
    weights: str | Path,
    *,
    batch_size: int = 100,
    splits: int = 10,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """IS of ``fake``, FID and KID between ``real`` and ``fake`` (images ``[N, C, H, W]`` in
    ``[-1, 1]``, ``C`` = 1 or 3) with torch-fidelity's Inception-v3 loaded from ``weights``.

    The network gives 2048-d pool features (FID, KID) and the 1008 ``logits_unbiased``
    (IS), torch-fidelity's defaults; the numbers come from :func:`fid_from_features`,
    :func:`kid` (``kid_subset_size`` clipped to the smaller set) and :func:`inception_score`.
    Raises ``RuntimeError`` with :func:`inception_unavailable`'s reason when it cannot run.

    Returns:
        ``{"metric/is", "metric/is_std", "metric/fid", "metric/kid", "metric/kid_std"}``.
    """
    for x, name in ((real, "real"), (fake, "fake")):
        check_batch(x, name)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{name} must be images [N, 1 or 3, H, W], got {list(x.shape)}")
    check_int(batch_size, "batch_size", 1)
    reason = inception_unavailable(weights)
    if reason is not None:
        raise RuntimeError(reason)
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048", "logits_unbiased"],
        feature_extractor_weights_path=str(weights),
    ).to(device)

    def features(images: Tensor) -> tuple[Tensor, Tensor]:
        pool, logits = [], []
        with torch.no_grad():
            for batch in torch.split(_to_uint8_rgb(images), batch_size):
                f, lg = net(batch.to(device))
                pool.append(f.cpu())
                logits.append(lg.cpu())
        return torch.cat(pool), torch.cat(logits)

    real_pool, _ = features(real)
    fake_pool, fake_logits = features(fake)
    is_mean, is_std = inception_score(fake_logits, splits=splits)
    size = min(kid_subset_size, real_pool.shape[0], fake_pool.shape[0])
    kid_mean, kid_std = kid(real_pool, fake_pool, subsets=kid_subsets, subset_size=size, seed=seed)
    return {
        "metric/is": is_mean,
        "metric/is_std": is_std,
        "metric/fid": fid_from_features(real_pool, fake_pool),
        "metric/kid": kid_mean,
        "metric/kid_std": kid_std,
    }
