"""MkDocs hooks: generated content that cannot drift from the code.

``<!-- cli-reference -->`` on a page is replaced by the help of every command of the
``lipreg train`` parser (``lipreg.train.cli.build_parser()``), rendered at build time.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

CLI_MARKER = "<!-- cli-reference -->"


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
