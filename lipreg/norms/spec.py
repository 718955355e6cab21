"""Norms from short text specs, for command lines and config files."""

from __future__ import annotations

import inspect

from lipreg.norms.base import Norm
from lipreg.norms.lp import L2, Lp
from lipreg.norms.sobolev import Sobolev
from lipreg.norms.wasserstein2 import Wasserstein2

_REGISTRY: dict[str, type[Norm]] = {cls.name: cls for cls in (L2, Lp, Sobolev, Wasserstein2)}

ACCEPTED_FORMS = (
    '"l2"',
    '"lp:p=P" with P in [1, inf], e.g. "lp:p=10"',
    '"sobolev:s=S[,p=P][,c=C][,spatial_dims=1|2|3]", e.g. "sobolev:s=-1.5,p=2,c=5"',
    '"w2[:gamma_l2=G][,low=L][,high=H]" (local, images), e.g. "w2:gamma_l2=0.1"',
)


def _fail(spec: str, problem: str) -> ValueError:
    forms = "; ".join(ACCEPTED_FORMS)
    return ValueError(f"invalid norm spec {spec!r}: {problem}. Accepted forms: {forms}")


def parse_norm(spec: str | Norm) -> Norm:
    """Build a norm from a text spec such as ``"l2"``, ``"lp:p=10"`` or
    ``"sobolev:s=-1.5,p=2,c=5"``; a :class:`Norm` is returned unchanged.

    The form is ``name[:key=value,...]`` with the constructor's argument names as keys
    (case-insensitive, spaces ignored); ``Norm.spec`` gives the spec of an existing norm, so
    ``parse_norm(n.spec) == n``. Unknown names or keys, repeated or missing keys and values
    that are not numbers raise ``ValueError`` listing the accepted forms; values outside a
    norm's range raise the constructor's ``ValueError``.
    """
    if isinstance(spec, Norm):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"norm must be a lipreg Norm or a text spec, got {type(spec).__name__}; "
            f"accepted text forms: {'; '.join(ACCEPTED_FORMS)}"
        )
    text = "".join(spec.split()).lower()
    name, _, arg_text = text.partition(":")
    if name not in _REGISTRY:
        raise _fail(spec, f"unknown norm {name!r}")
    cls = _REGISTRY[name]
    signature = inspect.signature(cls.__init__)
    params = {k: v for k, v in signature.parameters.items() if k != "self"}
    kwargs: dict[str, float | int] = {}
    for item in filter(None, arg_text.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in params:
            allowed = ", ".join(params) or "none"
            raise _fail(spec, f"{item!r} is not key=value with a key of {name} (keys: {allowed})")
        if key in kwargs:
            raise _fail(spec, f"{key} is given twice")
        # Integer arguments (spatial_dims) have integer defaults; everything else is real.
        as_int = isinstance(params[key].default, int)
        try:
            kwargs[key] = int(value) if as_int else float(value)
        except ValueError:
            kind = "an integer" if as_int else "a number"
            raise _fail(spec, f"{key}={value!r} is not {kind}") from None
    missing = [
        k for k, v in params.items() if v.default is inspect.Parameter.empty and k not in kwargs
    ]
    if missing:
        raise _fail(spec, f"{name} needs {', '.join(missing)}")
    return cls(**kwargs)
