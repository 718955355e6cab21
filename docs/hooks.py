"""MkDocs hooks: generated content that cannot drift from the code, and mathematics rendered
at build time.

``<!-- cli-reference -->`` on a page is replaced by the help of every command of the
``lipreg train`` parser (``lipreg.train.cli.build_parser()``), rendered at build time.

Formulas (``\\(...\\)`` and ``\\[...\\]``, which ``pymdownx.arithmatex`` in generic mode
wraps in ``<span class="arithmatex">`` / ``<div class="arithmatex">``) are converted to
MathML by ``latex2mathml`` (pure Python, in the ``docs`` extra), which browsers render
natively: the site needs no script and no network to show its mathematics. A formula that
cannot be converted, or whose conversion keeps a TeX command it does not know, stops the
build with the page and the formula.
"""

from __future__ import annotations

import argparse
import html
import importlib
import os
import re
from typing import Any

CLI_MARKER = "<!-- cli-reference -->"

# What pymdownx.arithmatex (generic mode) writes: the TeX with its delimiters, HTML-escaped.
ARITHMATEX = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">(?P<tex>.*?)</(?P=tag)>', flags=re.DOTALL
)
DELIMITERS = {"span": ("\\(", "\\)"), "div": ("\\[", "\\]")}

MATHML = "http://www.w3.org/1998/Math/MathML"
# Operators whose scripts TeX sets under and over them in display style.
LIMITS = frozenset({"sup", "inf", "lim", "max", "min", "det", "gcd", "Pr", "lim sup", "lim inf"})


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and, depth first, every sub-command parser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _parsers(sub)
    return found


def cli_reference() -> str:
    """Markdown with the ``--help`` text of the trainer's parser and its sub-commands."""
    try:
        cli = importlib.import_module("lipreg.train.cli")
    except ImportError as e:
        raise RuntimeError(
            f"a page contains {CLI_MARKER} but lipreg.train.cli cannot be imported ({e}); "
            "the CLI reference is generated from lipreg.train.cli.build_parser()"
        ) from e
    # argparse wraps help at the terminal width (and colours it on Python 3.14 terminals);
    # fix both so the page does not depend on where it is built.
    fixed = {"COLUMNS": "100", "NO_COLOR": "1"}
    previous = {k: os.environ.get(k) for k in fixed}
    os.environ.update(fixed)
    try:
        parsers = _parsers(cli.build_parser())
        blocks = [f"### `{p.prog}`\n\n```text\n{p.format_help().rstrip()}\n```" for p in parsers]
    finally:
        for k, v in previous.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    return "\n\n".join(blocks)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if CLI_MARKER not in markdown:
        return markdown
    return markdown.replace(CLI_MARKER, cli_reference())


def to_mathml(tex: str, *, block: bool) -> str:
    """The MathML of the TeX formula ``tex`` (without delimiters): ``<math>`` with the
    rendering in ``<semantics>`` and the TeX source as its annotation (for copying and screen
    readers). Raises ``ValueError`` if ``latex2mathml`` fails or leaves a TeX command."""
    from latex2mathml.converter import convert

    try:
        mathml = convert(tex, display="block" if block else "inline")
    except Exception as e:  # latex2mathml raises its own exceptions and plain ones
        raise ValueError(f"latex2mathml cannot convert it ({type(e).__name__}: {e})") from e
    left = sorted(set(re.findall(r"\\[A-Za-z]+", html.unescape(re.sub(r"<[^>]+>", "", mathml)))))
    if left:
        raise ValueError(f"latex2mathml does not know {', '.join(left)}; write it another way")
    return _with_limits_and_source(mathml, tex)


def _with_limits_and_source(mathml: str, tex: str) -> str:
    """``mathml`` with ``\\sup_x`` and its kin as ``munder`` (``munderover``) with
    ``movablelimits``, the scripts under the operator in display style and beside it inline,
    as in TeX (``latex2mathml`` writes ``msub`` / ``msubsup``), and the TeX ``tex`` as an
    annotation in ``semantics``."""
    import xml.etree.ElementTree as ET

    ET.register_namespace("", MATHML)
    math = ET.fromstring(mathml)
    for element in math.iter():
        base = element[0] if len(element) else None
        if (
            element.tag in (f"{{{MATHML}}}msub", f"{{{MATHML}}}msubsup")
            and base is not None
            and base.tag == f"{{{MATHML}}}mo"
            and (base.text or "").strip() in LIMITS
        ):
            element.tag = element.tag.replace("msubsup", "munderover").replace("msub", "munder")
            base.set("movablelimits", "true")
    semantics = ET.Element(f"{{{MATHML}}}semantics")
    if len(math) == 1:
        semantics.extend(list(math))
    else:  # semantics shows its first child only
        ET.SubElement(semantics, f"{{{MATHML}}}mrow").extend(list(math))
    annotation = ET.SubElement(semantics, f"{{{MATHML}}}annotation", encoding="application/x-tex")
    annotation.text = tex
    for child in list(math):
        math.remove(child)
    math.append(semantics)
    return ET.tostring(math, encoding="unicode", short_empty_elements=True)


def render_math(page_html: str, where: str) -> str:
    """``page_html`` with every arithmatex formula replaced by its MathML (:func:`to_mathml`),
    in the same ``span`` / ``div`` (``where`` names the page in errors)."""

    def one(match: re.Match[str]) -> str:
        tag = match["tag"]
        raw = html.unescape(match["tex"]).strip()
        opening, closing = DELIMITERS[tag]
        if not (raw.startswith(opening) and raw.endswith(closing)):
            raise RuntimeError(f"{where}: unexpected arithmatex output {match[0]!r}")
        try:
            mathml = to_mathml(raw[2:-2], block=tag == "div")
        except ValueError as e:
            raise RuntimeError(f"{where}: the formula {raw!r} cannot be rendered: {e}") from e
        return f'<{tag} class="arithmatex">{mathml}</{tag}>'

    return ARITHMATEX.sub(one, page_html)


INLINE = re.compile(r"\\\((?P<tex>.+?)\\\)")


def render_inline_math(text: str, where: str) -> str:
    """``text`` (HTML) with its ``\\(...\\)`` formulas as MathML (:func:`to_mathml`)."""

    def one(match: re.Match[str]) -> str:
        try:
            return to_mathml(html.unescape(match["tex"]), block=False)
        except ValueError as e:
            raise RuntimeError(f"{where}: {text!r}: {e}") from e

    return INLINE.sub(one, text)


def render_toc_math(items: Any, where: str) -> None:
    """The formulas of headings in a table of contents (``page.toc``, whose titles keep the
    heading's text with its TeX), as MathML like the headings themselves."""
    for item in items:
        item.title = render_inline_math(item.title, where)
        render_toc_math(item.children, where)


def on_page_content(content: str, page: Any, **kwargs: Any) -> str:
    render_toc_math(page.toc, page.file.src_uri)
    return render_math(content, page.file.src_uri)
