"""torch-fidelity's standard Inception-v3 weights, fetched once and verified:
:data:`INCEPTION_WEIGHTS`, :func:`fetch_inception_weights` and :func:`prepare_inception`."""

from __future__ import annotations

from pathlib import Path

from lipreg.train.data.download import Remote, cache_dir, fetch_file, file_digest
from lipreg.train.metrics.inception import _one_line, inception_unavailable

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
)
"""torch-fidelity's Inception-v3 weights (about 96 MB, converted from TensorFlow's 2015-12-05
Inception) and their SHA-256."""


def fetch_inception_weights(*, remote: Remote | None = None, progress: bool = True) -> Path:
    """torch-fidelity's standard Inception weights as a local file whose SHA-256 was checked.

    Taken from lipreg's cache (:func:`~lipreg.train.data.cache_dir`), else from torch.hub's
    cache where torch-fidelity keeps the copy it downloads itself
    (``torch.hub.get_dir()/checkpoints``), else downloaded into lipreg's cache
    (:func:`~lipreg.train.data.download.fetch_file`: verified, then renamed into place).
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
    except OSError as err:  # DownloadError, or a cache directory that cannot be written
        url = (INCEPTION_WEIGHTS if remote is None else remote).url
        return None, _one_line(
            f"IS/FID/KID skipped: {err}. Without internet, pass --inception-weights PATH (a "
            f"copy of {url}), or --no-inception"
        )
    return path, f"IS/FID/KID with torch-fidelity's Inception weights {path}"
