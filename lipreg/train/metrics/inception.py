"""IS, FID and KID through torch-fidelity's Inception-v3, from a weights file (its standard
weights come from :func:`~lipreg.train.metrics.fetch_inception_weights`).

A weights file is never unpickled: it is read with ``torch.load(weights_only=True)``, which
rebuilds tensors and plain containers and runs nothing from the file, and torch-fidelity
receives those tensors re-saved by lipreg (it would otherwise unpickle the file itself,
``weights_only=False``). Which file is acceptable is decided at start-up
(:func:`~lipreg.train.metrics.weights.check_run_weights`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from lipreg._validation import check_batch
from lipreg.train.data.base import check_int, to_uint8
from lipreg.train.metrics.features import fid_from_features, inception_score, kid


class WeightsError(ValueError):
    """A weights file that is refused: not the published file, not loadable as plain tensors,
    or not weights of the network (names, shapes, features that ignore the image)."""


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of the state dict saved at ``path``, read with
    ``torch.load(weights_only=True)``: nothing in the file can run code.

    Raises :class:`WeightsError` if the file cannot be read that way (a pickle of other
    objects, or not a ``torch.save`` file) or does not hold a dict of tensors by name.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, ...: not tensors
        raise WeightsError(
            f"{path}: cannot be loaded as plain tensors (torch.load with weights_only=True: "
            f"{_load_failure(err)}); it is not a weights file, or it holds objects that only a "
            "full unpickling, which can run code, would rebuild"
        ) from None
    if not (
        isinstance(state, Mapping)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())
    ):
        raise WeightsError(
            f"{path}: not a state dict (a dict of tensors by parameter name), got "
            f"{type(state).__name__}"
        )
    return dict(state)


def _load_failure(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, without torch's advice to retry with
    ``weights_only=False`` (which runs whatever the file holds)."""
    text = str(err)
    if "Weights only load failed" in text:
        body = text.split("\n", 1)[1] if "\n" in text else ""
        text = body.split("Check the documentation")[0].split("WeightsUnpickler error:")[-1]
    text = _one_line(text)
    return f"{type(err).__name__}: {text}" if text else f"{type(err).__name__} (empty or cut short)"


def inception_network(
    state: Mapping[str, Tensor], source: str | Path, device: torch.device | str | None = None
) -> nn.Module:
    """torch-fidelity's Inception-v3 feature extractor (2048-d pool features and the 1008
    ``logits_unbiased``) with the weights ``state`` (read from ``source``, named in errors),
    in eval mode on ``device``.

    torch-fidelity loads its weights with a full unpickling; it is handed ``state`` re-saved
    by lipreg into memory, which holds nothing but tensors. Raises :class:`WeightsError`
    naming the missing and unexpected parameters, or those of another shape, when ``state``
    does not fit the network.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    buffer.seek(0)
    try:
        net: nn.Module = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=buffer,
        )
    except RuntimeError as err:
        if "state_dict" not in str(err):
            raise
        raise WeightsError(f"{source}: {_mismatch(err)}") from None
    return net.to(device)


def _mismatch(err: RuntimeError) -> str:
    """How the weights differ from the network, from ``load_state_dict``'s error (whose
    format, quoted names and ``torch.Size`` shapes, torch has kept for years)."""
    text = str(err)
    parts = []
    for label in ("Missing", "Unexpected"):
        found = re.search(label + r" key\(s\) in state_dict: (.*)", text)
        if found:
            names = re.findall(r'"([^"]*)"', found.group(1))
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            parts.append(f"{label.lower()} {', '.join(names[:5])}{more}")
    for name, got, wanted in re.findall(
        r"size mismatch for ([^:]+): copying a param with shape torch\.Size\(\[(.*?)\]\) "
        r"from checkpoint, the shape in current model is torch\.Size\(\[(.*?)\]\)",
        text,
    ):
        parts.append(f"{name} has shape [{got}], the network's is [{wanted}]")
    return "not weights of torch-fidelity's Inception-v3: " + ("; ".join(parts) or _one_line(text))


def _check_features(features: Tensor, source: str | Path, what: str) -> None:
    """Raise :class:`WeightsError` unless ``features`` ``[N, D]`` of ``N >= 2`` different
    images are finite and differ between images: weights of the right shapes but degenerate
    values (zeros, say) give the same features for every image, which scores every
    generator IS 1 and FID 0."""
    if not bool(features.isfinite().all()):
        raise WeightsError(f"{source}: the network gives NaN or inf {what}")
    if features.shape[0] >= 2 and bool((features == features[:1]).all()):
        raise WeightsError(
            f"{source}: the network gives the same features for every image ({what}), so every "
            "generator would score IS 1 and FID 0; these are not working Inception weights"
        )


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
    ``weights`` is read as plain tensors (:func:`read_state_dict`; whether it is the published
    file is checked at start-up, see :func:`~lipreg.train.metrics.weights.check_run_weights`).
    Raises ``RuntimeError`` with :func:`inception_unavailable`'s reason when it cannot run,
    :class:`WeightsError` when ``weights`` does not load as tensors that fit the network or
    gives every real image the same features.

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
    net = inception_network(read_state_dict(weights), weights, device)

    def features(images: Tensor) -> tuple[Tensor, Tensor]:
        pool, logits = [], []
        with torch.no_grad():
            for batch in torch.split(_to_uint8_rgb(images), batch_size):
                f, lg = net(batch.to(device))
                pool.append(f.cpu())
                logits.append(lg.cpu())
        return torch.cat(pool), torch.cat(logits)

    real_pool, _ = features(real)
    if bool((real.flatten(1) != real[:1].flatten(1)).any()):  # the real images differ
        _check_features(real_pool, weights, "pool features of the real images")
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
