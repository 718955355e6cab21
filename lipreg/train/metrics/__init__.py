"""Sample-quality metrics of the reference trainer.

- :func:`wasserstein1`: the exact Wasserstein-1 distance between two equal-size empirical
  measures in ``R^d`` (toy data), an assignment problem.
- :func:`sliced_wasserstein` and :func:`swd`: the sliced Wasserstein distance, and its
  multi-scale image version over a Laplacian pyramid (Karras et al. 2018, Progressive GAN);
  needs no network weights.
- :func:`frechet_distance`, :func:`fid_from_features`, :func:`kid`, :func:`inception_score`:
  FID, KID and IS from features / logits that any network produced.
- :func:`inception_metrics`: IS, FID and KID of images through torch-fidelity's Inception-v3
  from a weights file; :func:`fetch_inception_weights` gives its standard weights
  (:data:`INCEPTION_WEIGHTS`, downloaded once into the cache, SHA-256 checked),
  :func:`prepare_inception` the file a run uses or why IS/FID/KID are skipped, and
  :func:`inception_unavailable` whether torch-fidelity can run here.
- Weights files are never unpickled: :func:`read_state_dict` reads their tensors
  (``weights_only=True``), :func:`inception_network` builds the network from them, and
  :func:`check_run_weights` / :func:`verify_inception_weights` check a run's file at start-up
  (the published SHA-256, or with ``--inception-weights-unverified`` the network's names,
  shapes and working features), raising :class:`WeightsError`.
- :mod:`~lipreg.train.metrics.digits` and :mod:`~lipreg.train.metrics.fashion`: FID in the
  features of a small classifier shipped with lipreg, classes reached, class KL and
  confidence, for the digits and Fashion-MNIST (the shared machinery:
  :mod:`~lipreg.train.metrics.classifier`).

Everything returns Python floats, computed in float64 (the SWD in the images' dtype, float32
at least, on their device).

The digits quality metric (:mod:`lipreg.train.metrics.digits`) and the spectral metric
(:mod:`lipreg.train.metrics.spectral`) have their own modules.
"""

from lipreg.train.metrics.features import fid_from_features, frechet_distance, inception_score, kid
from lipreg.train.metrics.inception import (
    WeightsError,
    inception_metrics,
    inception_network,
    inception_unavailable,
    read_state_dict,
)
from lipreg.train.metrics.wasserstein import (
    SWDResult,
    laplacian_pyramid,
    sliced_wasserstein,
    swd,
    wasserstein1,
)
from lipreg.train.metrics.weights import (
    INCEPTION_WEIGHTS,
    check_run_weights,
    fetch_inception_weights,
    prepare_inception,
    verify_inception_weights,
)

__all__ = [
    "INCEPTION_WEIGHTS",
    "SWDResult",
    "WeightsError",
    "check_run_weights",
    "fetch_inception_weights",
    "fid_from_features",
    "frechet_distance",
    "inception_metrics",
    "inception_network",
    "inception_score",
    "inception_unavailable",
    "kid",
    "laplacian_pyramid",
    "prepare_inception",
    "read_state_dict",
    "sliced_wasserstein",
    "swd",
    "verify_inception_weights",
    "wasserstein1",
]
