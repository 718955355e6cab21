"""The norm interface: a Banach space B on batch-first tensors and its dual B*."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from lipreg._validation import check_batch, described, upcast


def format_number(v: float) -> str:
    """Shortest text that parses back to ``v`` (``10`` rather than ``10.0``; ``inf``)."""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return str(int(v)) if v.is_integer() else repr(v)


def sqrt_zero_safe(squared: Tensor) -> Tensor:
    """``sqrt(squared)`` elementwise with derivative 0 where ``squared`` is 0 (as the ``l^p``
    norms have at the zero vector) rather than NaN."""
    positive = squared > 0
    root = torch.where(positive, squared, torch.ones_like(squared)).sqrt()
    return torch.where(positive, root, torch.zeros_like(root))


def sample_scale(x: Tensor) -> Tensor:
    """Per sample of ``x`` ``[B, ...]``, the power of two ``2^e`` with
    ``max_i |x_bi| / 2^e`` in ``[0.5, 1)``, shaped ``[B, 1, ..., 1]`` and detached; 1 for a zero
    or non-finite sample (whose norm then stays 0, NaN or inf).

    Norms that are homogeneous, ``||x|| = 2^e ||x / 2^e||``, evaluate the right side so that
    squares of entries above about 1e19 do not overflow float32. Dividing by a power of two
    is exact, so for entries in range the value is bit for bit the unscaled one, and its
    derivatives (the scale is a constant) are those of the norm itself.
    """
    m = x.detach().abs().flatten(1).amax(dim=1)
    mantissa, _ = torch.frexp(m)  # m = mantissa * 2^e exactly, so m / mantissa = 2^e exactly
    usable = (m > 0) & torch.isfinite(m)
    scale = torch.where(usable, m / torch.where(usable, mantissa, 1.0), 1.0)
    return scale.view(-1, *(1,) * (x.ndim - 1))


def standard_normal(
    shape: torch.Size | tuple[int, ...], like: Tensor, generator: torch.Generator | None
) -> Tensor:
    """White noise ``N(0, I)`` of ``shape`` in ``like``'s dtype and on its device, the source
    of every dual Gaussian (from ``generator``, or torch's global one)."""
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


def not_hilbert(norm: Norm, who: str) -> ValueError:
    """The error of ``who`` (a method or penalty) that needs a Hilbert norm, given ``norm``."""
    return ValueError(
        f"{who} needs a Hilbert norm, ||h||_B^2 = <h, M h>, whose dual Gaussian N(0, M^-1) "
        f"satisfies E<g, h>^2 = ||g||_B*^2; {norm!r} is not one. The Hilbert norms are L2(), "
        "Sobolev(s, p=2) and Wasserstein2(); use one of them, or an exact gradient penalty "
        "(BanachR1, BanachR2, BanachGP) with this norm"
    )


class Norm(ABC):
    """A norm ``||.||_B`` on batch-first tensors together with its dual norm ``||.||_{B*}``.

    Both methods reduce every non-batch axis: ``norm(x)`` maps ``x: [B, ...]`` to
    ``[B]`` with entry ``b`` equal to ``||x_b||_B``, and ``dual(g)`` maps ``g: [B, ...]`` to
    ``[B]`` with entry ``b`` equal to

        ||g_b||_{B*} = sup_{h != 0} <g_b, h> / ||h||_B,    <g, h> = sum_i g_i h_i,

    i.e. the norm of the linear functional ``h -> <g_b, h>``. With ``g`` the Euclidean
    gradient of a critic ``D`` at ``x``, ``dual(g)`` is ``||dD(x)||_{B*}``, the local
    Lipschitz constant of ``D`` in ``B`` (Lemma 1 of Adler & Lunz, 2018). Discrete conventions
    apply throughout: plain sums, no cell-volume factor, so ``L2()`` is the WGAN-GP norm.

    Base points: a *local* norm (a Riemannian metric such as
    :class:`lipreg.norms.Wasserstein2`, ``local = True``) measures tangent vectors at a point
    ``x_hat`` of the space, so ``norm``, ``dual`` and ``dual_squared`` take the base point as
    ``at`` (``[B, ...]`` like their argument; required by local norms). Ordinary norms are the
    same at every point: they check ``at`` when given and otherwise ignore it, so penalties
    can always pass ``at=x_hat``. Local norms subclass :class:`LocalNorm` and implement
    ``_norm_at`` / ``_dual_squared_at`` instead of ``_norm`` / ``_dual``.

    What a subclass's ``_norm`` / ``_dual`` / ``_dual_squared`` return is checked by the
    public methods: one value per sample, ``[B]`` in the argument's dtype and on its device,
    depending on the argument when it requires grad (a ``ValueError`` or ``TypeError`` naming
    the method and what it returned otherwise).

    Hilbert norms (``hilbert``), ``||h||_B^2 = <h, M h>`` with ``M`` symmetric positive
    definite, have ``||g||_{B*}^2 = <g, M^{-1} g>`` and a *dual Gaussian* ``N(0, M^{-1})``
    (:meth:`dual_gaussian`), whose draws ``h`` satisfy ``E<g, h>^2 = ||g||_{B*}^2``: the
    derivative-free penalties (:class:`lipreg.ApproxR1`) perturb with them.

    Half-precision inputs are computed in float32. Subclasses implement ``_norm``,
    ``_dual``, ``params``, ``space`` and ``dual_space``, Hilbert norms ``_dual_gaussian`` and
    ``_dual_gaussian_variance``, and extend ``check`` when they need a particular layout.
    """

    #: Name of the norm in text specs (see :func:`lipreg.parse_norm`).
    name: str

    #: Whether the norm depends on a base point ``at`` (see above).
    local: ClassVar[bool] = False

    def norm(self, x: Tensor, at: Tensor | None = None) -> Tensor:
        """``||x_b||_B`` for every sample (at base point ``at_b``): ``[B, ...] -> [B]``."""
        self.check(x, "x")
        self._check_base_point(at, x, "x")
        x = upcast(x)
        return self._result(self._norm(x), x, "_norm")

    def dual(self, g: Tensor, at: Tensor | None = None) -> Tensor:
        """``||g_b||_{B*}`` for every sample (at base point ``at_b``): ``[B, ...] -> [B]``."""
        self.check(g, "g")
        self._check_base_point(at, g, "g")
        g = upcast(g)
        return self._result(self._dual(g), g, "_dual")

    def dual_squared(self, g: Tensor, at: Tensor | None = None) -> Tensor:
        """``||g_b||_{B*}^2`` for every sample: ``[B, ...] -> [B]``.

        Zero-centred penalties use it; norms whose square is smoother than the norm (a
        quadratic form: the dual ``L^2`` and ``W^{-s,2}`` norms, local metrics) compute it
        without a square root, as a plain sum of squares.
        """
        self.check(g, "g")
        self._check_base_point(at, g, "g")
        g = upcast(g)
        return self._result(self._dual_squared(g), g, "_dual_squared")

    @property
    def hilbert(self) -> bool:
        """Whether ``||h||_B^2 = <h, M h>`` for a symmetric positive definite ``M`` (at each
        base point, for local norms): the norms that have a :meth:`dual_gaussian`."""
        return False

    def dual_gaussian(
        self,
        like: Tensor,
        generator: torch.Generator | None = None,
        at: Tensor | None = None,
    ) -> Tensor:
        """A draw ``h_b ~ N(0, M^{-1})`` per sample, exactly (no truncation or iteration).

        With ``||g||_{B*}^2 = <g, M^{-1} g>`` (the dual of a Hilbert norm), every ``g``
        satisfies ``E<g_b, h_b>^2 = ||g_b||_{B*}^2``, and ``E ||h_b||_B^2`` is the number of
        entries ``n`` of a sample. ``L2``: ``h = z``, ``z ~ N(0, I)``. ``Sobolev(s, p=2)``:
        ``h = T_{-s} z``, the dual filter applied to white noise (one FFT pair; for ``s < 0``
        blue noise). ``Wasserstein2``: ``h = A^T (w^{1/2} z_e) + gamma_l2^{1/2} z``, ``A`` the
        edge-difference stencil and ``w`` the edge weights at ``at``, whose covariance is the
        metric ``M_at`` of the dual norm.

        Args:
            like: ``[B, ...]``: the shape, dtype and device of the draw (its values are unused).
            generator: the ``torch.Generator`` to draw from (default: the global one).
            at: the base point, required by local norms (see :class:`Norm`).

        Returns:
            ``h`` shaped like ``like``, in its dtype (drawn in float32 at least).

        Raises:
            ValueError: if the norm is not a Hilbert norm (``Lp`` with ``p != 2``,
                ``Sobolev`` with ``p != 2``).
        """
        up = self._gaussian_input(like, at, "dual_gaussian")
        h = self._dual_gaussian(up, generator, at)
        wanted = up.shape, up.dtype, up.device
        if not isinstance(h, Tensor) or (h.shape, h.dtype, h.device) != wanted:
            raise (ValueError if isinstance(h, Tensor) else TypeError)(
                f"{type(self).__name__}._dual_gaussian must return a draw shaped like its "
                f"argument, a {str(up.dtype).removeprefix('torch.')} tensor of shape "
                f"{list(up.shape)} on {up.device}; it returned {described(h)}"
            )
        return h.to(like.dtype)

    def dual_gaussian_variance(self, like: Tensor, at: Tensor | None = None) -> Tensor:
        """Per sample, the mean variance of an entry of :meth:`dual_gaussian`,
        ``E ||h_b||_2^2 / n = tr(M_b^{-1}) / n``: ``[B, ...] -> [B]`` (float32 at least).

        1 for ``L2``; for ``Sobolev(s, p=2)`` the mean of ``(1 + c|xi|^2)^{-s}`` over the full
        frequency grid; for ``Wasserstein2`` ``(2 sum_e w_e + gamma_l2 n) / n`` at ``at``.
        Dividing draws by its square root gives perturbations whose entries have unit mean
        square in data units, whatever the norm.
        """
        up = self._gaussian_input(like, at, "dual_gaussian_variance")
        return self._result(self._dual_gaussian_variance(up, at), up, "_dual_gaussian_variance")

    def _gaussian_input(self, like: Tensor, at: Tensor | None, who: str) -> Tensor:
        """``like`` upcast, after checking it, the base point and that the norm is Hilbert."""
        self.check(like, "like")
        self._check_base_point(at, like, "like")
        if not self.hilbert:
            raise not_hilbert(self, f"{type(self).__name__}.{who}")
        return upcast(like)

    def _dual_gaussian(
        self, like: Tensor, generator: torch.Generator | None, at: Tensor | None
    ) -> Tensor:
        raise NotImplementedError  # only reached by Hilbert norms, which implement it

    def _dual_gaussian_variance(self, like: Tensor, at: Tensor | None) -> Tensor:
        raise NotImplementedError  # only reached by Hilbert norms, which implement it

    def lp_embedding(self, x: Tensor) -> tuple[Tensor, float] | None:
        """``(T x flattened to [B, N], p)`` when ``||x||_B = ||T x||_p`` for a linear map ``T``,
        else ``None``.

        Pairwise distances ``||x_i - y_j||_B = ||T x_i - T y_j||_p`` then need one transform
        per sample and a ``torch.cdist``, instead of a norm per pair (see
        :func:`lipreg.pairwise_distances`). ``L^p``: ``T`` is the identity; ``W^{s,p}``: the
        Sobolev filter. Norms of any other form (and local norms) return ``None``.
        """
        return None

    def _result(self, value: object, arg: Tensor, method: str) -> Tensor:
        """``value``, what the subclass's ``method`` returned for ``arg`` (float32 at least),
        if it is one value per sample: a tensor ``[B]`` in ``arg``'s dtype on its device that
        depends on ``arg`` when ``arg`` requires grad. The one check of a norm's results that
        every penalty, calibration, distance and estimate goes through (metadata only)."""
        who = f"{type(self).__name__}.{method}"
        wanted = (arg.shape[0],), arg.dtype, arg.device
        if not isinstance(value, Tensor) or (value.shape, value.dtype, value.device) != wanted:
            error = ValueError if isinstance(value, Tensor) else TypeError
            raise error(
                f"{who} must return one value per sample, a "
                f"{str(arg.dtype).removeprefix('torch.')} tensor of shape [{arg.shape[0]}] on "
                f"{arg.device} (its argument's dtype and device); it returned {described(value)}"
            )
        if arg.requires_grad and torch.is_grad_enabled() and not value.requires_grad:
            raise ValueError(
                f"{who} returned values that do not depend on its argument (they do not "
                "require grad although it does): the norm detaches them somewhere (.detach(), "
                ".item(), NumPy, torch.no_grad()), so a penalty through it cannot train the "
                "critic; compute it with differentiable torch operations"
            )
        return value

    def _check_base_point(self, at: Tensor | None, x: Tensor, name: str) -> None:
        """Raise if ``at`` is not a base point for ``x``; a local norm requires one."""
        if at is None:
            if self.local:
                raise TypeError(
                    f"{type(self).__name__} is a local norm: it measures {name} at a base point, "
                    f"so pass at=x_hat ([B, ...] like {name}), e.g. norm.dual(g, at=x_hat)"
                )
            return
        check_batch(at, "at")
        if at.shape != x.shape or at.device != x.device:
            raise ValueError(
                f"the base point at must have the shape and device of {name}: "
                f"{name} {list(x.shape)} on {x.device}, at {list(at.shape)} on {at.device}"
            )

    def check(self, x: Tensor, name: str) -> None:
        """Raise if ``x`` (called ``name`` in messages) is not a valid input of this norm."""
        check_batch(x, name)

    @abstractmethod
    def _norm(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def _dual(self, g: Tensor) -> Tensor: ...

    def _dual_squared(self, g: Tensor) -> Tensor:
        return self._result(self._dual(g), g, "_dual").square()

    @property
    @abstractmethod
    def params(self) -> dict[str, float]:
        """The constructor arguments that define the norm, by name."""

    @property
    @abstractmethod
    def space(self) -> str:
        """Name of ``B``, e.g. ``"W^{-1.5,2}"``."""

    @property
    @abstractmethod
    def dual_space(self) -> str:
        """Name of ``B*``, e.g. ``"W^{1.5,2}"``."""

    @property
    def spec(self) -> str:
        """Text spec that :func:`lipreg.parse_norm` turns back into an equal norm."""
        if not self.params:
            return self.name
        args = ",".join(f"{k}={format_number(float(v))}" for k, v in self.params.items())
        return f"{self.name}:{args}"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={format_number(float(v))}" for k, v in self.params.items())
        return f"{type(self).__name__}({args}) [B = {self.space}, B* = {self.dual_space}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Norm) and (type(self), self.params) == (type(other), other.params)

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.params.items())))


class LocalNorm(Norm):
    """A norm that depends on a base point: ``||h||_{x}`` on the tangent space at ``x``, as a
    Riemannian metric gives (``local = True``).

    ``norm(h, at=x)``, ``dual(g, at=x)`` and ``dual_squared(g, at=x)`` require the base point
    ``at`` (``[B, ...]`` like ``h``; a constant of the metric: no gradient flows to it).
    Lemma 1 holds pointwise: ``D`` has
    local Lipschitz constant ``||dD(x)||_{x*}`` at ``x``, which is what gradient penalties
    measure when they pass ``at=x_hat``. Quantities that need one norm on the whole space
    (``E||X||_B``, distances ``||x - y||_B``) are not defined for local norms.

    Subclasses implement ``_norm_at(h, at)`` and ``_dual_squared_at(g, at)`` (the squared
    dual: local metrics are quadratic forms), plus ``params``, ``space``, ``dual_space`` and
    ``check``.
    """

    local: ClassVar[bool] = True

    def _base(self, at: Tensor | None, x: Tensor, name: str) -> Tensor:
        self.check(x, name)
        self._check_base_point(at, x, name)
        assert at is not None  # _check_base_point raises for local norms
        self.check(at, "at")
        return upcast(at).to(upcast(x).dtype)

    def norm(self, x: Tensor, at: Tensor | None = None) -> Tensor:
        """``||x_b||_{at_b}`` for every sample: ``[B, ...] -> [B]`` (evaluated on ``x``
        divided by a power of two per sample, see :func:`sample_scale`)."""
        base = self._base(at, x, "x")
        x = upcast(x)
        scale = sample_scale(x)
        return self._result(self._norm_at(x / scale, base), x, "_norm_at") * scale.flatten()

    def dual(self, g: Tensor, at: Tensor | None = None) -> Tensor:
        """``||g_b||_{at_b, *}`` for every sample: ``[B, ...] -> [B]``.

        The square root of :meth:`dual_squared`, with derivative 0 where it is 0 (as the
        ``l^p`` norms have at the zero vector) rather than NaN; evaluated on ``g`` divided by
        a power of two per sample (:func:`sample_scale`), so that the squared norm of large
        gradients does not overflow.
        """
        self.check(g, "g")
        g = upcast(g)
        scale = sample_scale(g)
        return sqrt_zero_safe(self.dual_squared(g / scale, at)) * scale.flatten()

    def dual_squared(self, g: Tensor, at: Tensor | None = None) -> Tensor:
        """``||g_b||_{at_b, *}^2`` for every sample, quadratic in ``g``: ``[B, ...] -> [B]``."""
        base = self._base(at, g, "g")
        g = upcast(g)
        return self._result(self._dual_squared_at(g, base), g, "_dual_squared_at")

    def _gaussian_input(self, like: Tensor, at: Tensor | None, who: str) -> Tensor:
        up = super()._gaussian_input(like, at, who)
        assert at is not None  # _check_base_point raises for local norms
        self.check(at, "at")
        return up

    def _norm(self, x: Tensor) -> Tensor:
        raise TypeError(f"{type(self).__name__} is a local norm: call norm(x, at=base_point)")

    def _dual(self, g: Tensor) -> Tensor:
        raise TypeError(f"{type(self).__name__} is a local norm: call dual(g, at=base_point)")

    @abstractmethod
    def _norm_at(self, x: Tensor, at: Tensor) -> Tensor: ...

    @abstractmethod
    def _dual_squared_at(self, g: Tensor, at: Tensor) -> Tensor: ...
