"""Which StyleGAN host is calling, told by its arguments, and its calling conventions."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

Protocol: TypeAlias = Literal["ada", "sg3"]

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")

# The hosts' defaults differ (StyleGAN2-ADA's loss mixes styles and regularises path
# lengths unless told otherwise; StyleGAN3's does neither).
DEFAULTS: dict[Protocol, dict[str, float]] = {
    "ada": {"style_mixing_prob": 0.9, "pl_weight": 2.0},
    "sg3": {"style_mixing_prob": 0.0, "pl_weight": 0.0},
}


def identify(
    G_mapping: object, G_synthesis: object, G: object, blur_sigma: float, blur_kimg: float
) -> Protocol:
    """``"ada"`` when the generator comes as ``G_mapping`` and ``G_synthesis``
    (StyleGAN2-ADA), ``"sg3"`` when it comes as ``G`` (StyleGAN3)."""
    if G is not None and G_mapping is None and G_synthesis is None:
        return "sg3"
    if G is None and G_mapping is not None and G_synthesis is not None:
        if blur_sigma or blur_kimg:
            raise ValueError(
                "blur_init_sigma/blur_fade_kimg are StyleGAN3 options (they need cur_nimg), "
                "but G_mapping/G_synthesis identify StyleGAN2-ADA; leave them at 0"
            )
        return "ada"
    raise TypeError(
        "pass the generator as the host does: G (StyleGAN3) or G_mapping and G_synthesis "
        "(StyleGAN2-ADA), not both or neither"
    )


def call_arguments(
    protocol: Protocol,
    args: tuple[Any, ...],
    sync: bool | None,
    gain: float | None,
    cur_nimg: int | None,
) -> tuple[bool, float, int]:
    """(sync, gain, cur_nimg) of an ``accumulate_gradients`` call: StyleGAN2-ADA's positional
    order is ``sync, gain``, StyleGAN3's ``gain, cur_nimg`` (both hosts pass keywords)."""
    names = ("sync", "gain") if protocol == "ada" else ("gain", "cur_nimg")
    if len(args) > len(names):
        raise TypeError(
            f"accumulate_gradients takes (phase, real_img, real_c, gen_z, gen_c, "
            f"{', '.join(names)}) for this host, got {len(args)} extra positional arguments"
        )
    given: dict[str, Any] = {"sync": sync, "gain": gain, "cur_nimg": cur_nimg}
    for name, value in zip(names, args, strict=False):
        if given[name] is not None:
            raise TypeError(f"accumulate_gradients got multiple values for {name!r}")
        given[name] = value
    if given["gain"] is None:
        raise TypeError("accumulate_gradients needs gain (the phase's interval)")
    if protocol == "sg3" and given["sync"] is not None:
        raise TypeError("StyleGAN3's accumulate_gradients has no sync argument")
    if protocol == "ada" and given["cur_nimg"] is not None:
        raise TypeError("StyleGAN2-ADA's accumulate_gradients has no cur_nimg argument")
    sync_value = True if given["sync"] is None else bool(given["sync"])
    return sync_value, float(given["gain"]), int(given["cur_nimg"] or 0)
