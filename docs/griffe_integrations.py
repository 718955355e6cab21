"""Griffe extension: document ``integrations/`` as ``lipreg.integrations``.

The wheel (and the editable install) map the repository's ``integrations/`` folder to the
``lipreg.integrations`` package, but Griffe finds submodules by walking ``lipreg/`` on disk,
so ``::: lipreg.integrations...`` would not resolve. When Griffe has visited ``lipreg``,
this loads ``integrations/`` with the same docstring settings and attaches it as the member
``integrations``, which makes every object's path ``lipreg.integrations.<...>``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import griffe

INTEGRATIONS = Path(__file__).resolve().parents[1] / "integrations"


class IntegrationsAsSubpackage(griffe.Extension):
    def on_module_members(
        self, *, node: ast.AST | griffe.ObjectNode, mod: griffe.Module, agent: Any, **kwargs: Any
    ) -> None:
        if mod.path != "lipreg" or "integrations" in mod.members:
            return
        loader = griffe.GriffeLoader(
            search_paths=[INTEGRATIONS.parent],
            docstring_parser=agent.docstring_parser,
            docstring_options=agent.docstring_options,
        )
        integrations = loader.load("integrations")
        assert isinstance(integrations, griffe.Module)
        mod.set_member("integrations", integrations)
