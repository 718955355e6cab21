"""torch-fidelity's standard Inception-v3 weights, fetched once and verified:
:data:`INCEPTION_WEIGHTS`, :func:`fetch_inception_weights`, :func:`prepare_inception`, and
the start-up check of a weights file a run is given, :func:`check_run_weights`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lipreg.train.data.download import Remote, cache_dir, fetch_file, file_digest
from lipreg.train.metrics.inception import (
    WeightsError,
    _check_features,
    _one_line,
    inception_network,
    inception_unavailable,
    read_state_dict,
)

if TYPE_CHECKING:
    from lipreg.train.config import TrainConfig

INCEPTION_WEIGHTS = Remote(
    # The URL is torch-fidelity's own (torch_fidelity/feature_extractor_inceptionv3.py,
    # URL_INCEPTION_V3, unchanged from v0.2.0 to v0.4.0), which it fetches through torch.hub
    # without a hash check; torch.hub's naming convention makes "6726825d" in the file name
    # the first hex digits of the file's SHA-256. The full SHA-256 is the one pinned for the
    # same file (mseitzer/pytorch-fid's pt_inception-2015-12-05-6726825d.pth) in
    # genforce/genforce, metrics/inception.py (_MODEL_URL_SHA256), and starts with them.
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth",
    filename="weights-inception-2015-12-05-6726825d.pth",
    algorithm="sha256",
    digest="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    url_env="LIPREG_INCEPTION_URL",
)
"""torch-fidelity's Inception-v3 weights (about 96 MB, converted from TensorFlow's 2015-12-05
Inception) and their SHA-256; a mirror is set by ``LIPREG_INCEPTION_URL`` (the file must be
the same: its checksum cannot be changed)."""


def fetch_inception_weights(*, remote: Remote | None = None, progress: bool = True) -> Path:
    """torch-fidelity's standard Inception weights as a local file whose SHA-256 was checked.

    Taken from lipreg's cache (:func:`~lipreg.train.data.cache_dir`), else from torch.hub's
    cache where torch-fidelity keeps the copy it downloads itself
    (``torch.hub.get_dir()/checkpoints``), else downloaded into lipreg's cache
    (:func:`~lipreg.train.data.download.fetch_file`: verified, then renamed into place; from
    ``$LIPREG_INCEPTION_URL`` when set).
    Raises :class:`~lipreg.train.data.DownloadError` when the download fails or a cached
    copy does not match. ``remote`` defaults to :data:`INCEPTION_WEIGHTS`, read when called
    (tests serve small files locally).
    """
    import torch.hub

    remote = INCEPTION_WEIGHTS if remote is None else remote
    own = cache_dir() / remote.filename
    if not own.exists():
        hub = Path(torch.hub.get_dir()) / "checkpoints" / remote.filename
        if hub.is_file() and file_digest(hub, remote.algorithm) == remote.digest:
            return hub
    return fetch_file(remote, cache_dir(), progress=progress)


def prepare_inception(
    weights: str | Path | None = None,
    *,
    remote: Remote | None = None,
    progress: bool = True,
) -> tuple[Path | None, str]:
    """The Inception weights file that IS/FID/KID will use, with one line for the run's log.

    ``weights`` (a local file, e.g. on a machine without internet) is used as it is; ``None``
    stands for torch-fidelity's standard weights (:func:`fetch_inception_weights`, downloaded
    on first use). Returns ``(path, note)`` when torch-fidelity imports and the file is
    there, else ``(None, reason)``: the reason says why IS/FID/KID are skipped and how to
    get them. Nothing raises, so a run goes on without them. ``remote`` is passed on to
    :func:`fetch_inception_weights`.
    """
    reason = inception_unavailable(weights)
    if reason is not None:
        return None, reason
    if weights is not None:
        return Path(weights), f"IS/FID/KID with the Inception weights {weights}"
    try:
        path = fetch_inception_weights(remote=remote, progress=progress)
    # DownloadError, a cache directory that cannot be written, or a bad setting (ValueError)
    except (OSError, ValueError) as err:
        url = (INCEPTION_WEIGHTS if remote is None else remote).url
        return None, _one_line(
            f"IS/FID/KID skipped: {err}. Without internet, pass --inception-weights PATH (a "
            f"copy of {url}), or --no-inception"
        )
    return path, f"IS/FID/KID with torch-fidelity's Inception weights {path}"


UNVERIFIED_OPTION = "--inception-weights-unverified"
"""The option that accepts a weights file other than the published one (read as tensors only)."""


def verify_inception_weights(path: str | Path, *, unverified: bool = False) -> None:
    """Raise :class:`~lipreg.train.metrics.inception.WeightsError` unless the Inception weights
    at ``path`` may be used; nothing in the file is unpickled.

    By default the file's SHA-256 must be :data:`INCEPTION_WEIGHTS`'s, the published digest
    of torch-fidelity's weights (read when called). With ``unverified`` (weights the user
    brings knowingly) the file must instead load as plain tensors
    (:func:`~lipreg.train.metrics.inception.read_state_dict`) and, where torch-fidelity
    imports, fit its network exactly (names and shapes) and give different features for
    three different test images.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if not unverified:
        expected, found = INCEPTION_WEIGHTS.digest, file_digest(path, "sha256")
        if found != expected:
            raise WeightsError(
                f"{path}: its SHA-256 {found} is not the published {expected} of "
                f"torch-fidelity's Inception-v3 weights ({INCEPTION_WEIGHTS.url}); pass that "
                f"file, or add {UNVERIFIED_OPTION} to use other Inception-v3 weights knowingly "
                "(read as tensors only, never unpickled)"
            )
        return
    state = read_state_dict(path)
    if inception_unavailable() is not None:
        return  # no network to compare with, and no IS/FID/KID to compute either
    net = inception_network(state, path)
    with torch.no_grad():
        pool, _ = net(_test_images())
    _check_features(pool, path, "pool features of three different test images")


def _test_images() -> torch.Tensor:
    """Three different uint8 RGB images ``[3, 3, 32, 32]``: black, a diagonal ramp, noise."""
    ramp = torch.linspace(0, 255, 32).view(1, 32, 1) + torch.linspace(0, 255, 32).view(1, 1, 32)
    noise = torch.randint(0, 256, (3, 32, 32), generator=torch.Generator().manual_seed(0))
    images = torch.stack([torch.zeros(3, 32, 32), (ramp / 2).expand(3, 32, 32), noise.float()])
    return images.round().to(torch.uint8)


def check_run_weights(config: TrainConfig) -> None:
    """The start-up check of the weights files a run of ``config`` is given, before any file
    is written or any step taken (new runs and ``--resume`` alike): the Inception weights of
    ``--inception-weights`` (:func:`verify_inception_weights`, with
    ``--inception-weights-unverified`` as ``unverified``), unless ``--no-inception``.

    The trainer is handed no other weights file: the digits metric loads the classifier
    shipped with lipreg (tensors only, their hash checked) and a checkpoint to resume is read
    with ``weights_only=True`` and its own digest. Raises
    :class:`~lipreg.train.metrics.inception.WeightsError` (a ``ValueError``) with one line
    naming the option.
    """
    if config.inception_weights_unverified and config.inception_weights is None:
        raise WeightsError(
            f"{UNVERIFIED_OPTION} accepts a weights file other than the published one, given "
            f"with --inception-weights PATH; pass that option too, or drop {UNVERIFIED_OPTION}"
        )
    if not config.inception or config.inception_weights is None:
        return
    try:
        verify_inception_weights(
            config.inception_weights, unverified=config.inception_weights_unverified
        )
    except WeightsError as err:
        raise WeightsError(f"--inception-weights {err}") from None
