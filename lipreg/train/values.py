"""The parsers of ``lipreg train``'s option values (``argparse`` types): each turns the text
of one option into its value, or raises ``argparse.ArgumentTypeError`` saying what it
expected (argparse names the option)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lipreg.norms import parse_norm
from lipreg.train.constraints import parse_constraint


def integer(low: int) -> Callable[[str], int]:
    """A parser of integers ``>= low``: 1 for counts of things, 0 for options that 0 turns
    off."""
    expected = "a positive integer" if low == 1 else f"an integer >= {low} (0: off)"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = integer(1)
count = integer(0)


def number(
    low: float, high: float, *, open_low: bool, open_high: bool, auto: bool = False
) -> Callable[[str], Any]:
    """A parser of numbers in an interval (and of ``auto`` when allowed)."""
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    expected = f"expected {'auto or ' if auto else ''}a number in {interval}"

    def parse(text: str) -> float | str:
        if auto and text.strip().lower() == "auto":
            return "auto"
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        inside = (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high
        )
        if math.isnan(value) or not inside:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


def norm_spec(text: str) -> str:
    """The canonical spec of a norm (:func:`lipreg.parse_norm`)."""
    try:
        return parse_norm(text).spec
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def constraint_spec(text: str) -> str:
    """The canonical spec of a constraint (:func:`~lipreg.train.constraints.parse_constraint`)."""
    try:
        return parse_constraint(text).spec
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def existing_file(text: str) -> str:
    """The path of an existing file, ``~`` expanded."""
    if not Path(text).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"no file at {text!r}")
    return str(Path(text).expanduser())


def device(text: str) -> str:
    """``auto``, or a CPU or available CUDA device."""
    import torch

    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available here; use cpu")
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: the trainer runs on cpu or cuda")
    return text
