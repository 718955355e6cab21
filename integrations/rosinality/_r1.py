"""A replacement for rosinality's ``d_r1_loss(real_pred, real_img)``."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

from torch import Tensor

from lipreg.norms import Norm, parse_norm

from .._outputs import squared_dual_norms


@contextlib.contextmanager
def _no_weight_gradients() -> Iterator[None]:
    """The host's ``op.conv2d_gradfix.no_weight_gradients()`` (its R1 skips the weight
    gradients of its custom convolution while taking the input gradient)."""
    try:
        gradfix = importlib.import_module("op.conv2d_gradfix")
    except ImportError as e:
        raise ImportError(
            "R1Loss runs inside rosinality's stylegan2-pytorch and uses its "
            "op.conv2d_gradfix: run train.py from the repository's root, as its README says "
            f"({e})"
        ) from e
    with gradfix.no_weight_gradients():
        yield


class R1Loss:
    """``d_r1_loss(real_pred, real_img)`` of rosinality's ``train.py`` in the dual norm of
    ``B``:

        E_b ||d real_pred.sum() / d real_img_b||_{B*}^2,

    the batch mean of the squared dual norms (the host's is the squared Euclidean norm). The
    host multiplies it by ``args.r1 / 2`` and, for lazy regularisation, by ``d_reg_every``
    on every ``d_reg_every``-th step, so the discriminator minimises
    ``(r1 / 2) E ||dD(x)||_{B*}^2`` on average: :class:`lipreg.BanachR1` with
    ``gamma = r1`` wrapped in ``lipreg.Lazy(..., every=d_reg_every)``. With ``norm="l2"`` the
    value and the discriminator's gradients are the host's bit for bit (tested against a
    stand-in; checked by hand against the real function).

    As the host does, the gradient is taken inside its
    ``op.conv2d_gradfix.no_weight_gradients()`` and in ``real_img`` (before augmentation);
    local norms (``"w2"``) are measured at ``real_img``. A norm other than L2 changes the size
    of the penalty: re-tune ``--r1`` (see the page of this integration).

    Args:
        norm: the norm of ``B``, a :class:`lipreg.Norm` or a text spec (``"sobolev:s=1"``).
        check_finite: raise ``ValueError`` if a squared dual norm is NaN or inf (one host
            synchronisation per call).

    Shapes:
        ``real_pred``: scores ``[B, 1]`` (or ``[B]``) computed from ``real_img``;
        ``real_img``: ``[B, C, H, W]`` requiring grad; returns a 0-dim tensor.
    """

    def __init__(self, norm: Norm | str = "l2", *, check_finite: bool = True) -> None:
        self.norm = parse_norm(norm)
        self.check_finite = bool(check_finite)

    def __call__(self, real_pred: Tensor, real_img: Tensor) -> Tensor:
        """``E ||d real_pred.sum() / d real_img||_{B*}^2``, a 0-dim tensor differentiable in
        the discriminator's parameters."""
        with _no_weight_gradients():
            squared = squared_dual_norms(
                self.norm,
                real_pred,
                real_img,
                names=("real_pred", "real_img"),
                hint="as the host's train.py does (real_img.requires_grad = True)",
                check_finite=self.check_finite,
            )
        return squared.mean()

    def __repr__(self) -> str:
        return f"R1Loss(norm={self.norm!r})"
