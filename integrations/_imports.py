"""Importing a host codebase's own modules, with a message that names what is really missing.

The hosts (StyleGAN2-ADA, StyleGAN3, StudioGAN) are run from their repository, so their
modules import when the working directory is right; when an import fails there are two
causes with different fixes: the host's module itself is not on the path, or a package the
host's module imports is not installed (StyleGAN3's and StudioGAN's ``conv2d_gradfix``
import ``pkg_resources``, which setuptools 82 and later no longer ship).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# What to do when a host's module imports a package that is not installed, by import name.
_INSTALL = {
    "pkg_resources": "pkg_resources came with setuptools before version 82: pip install "
    "'setuptools<82', or in the host replace 'from pkg_resources import parse_version' with "
    "'from packaging.version import parse as parse_version' (pip install packaging) in every "
    "file that has it (grep -rl pkg_resources . from its root; StyleGAN3: "
    "torch_utils/ops/conv2d_gradfix.py and grid_sample_gradfix.py)",
    "PIL": "pip install pillow",
}


def import_host_module(name: str, who: str, fix: str) -> ModuleType:
    """``importlib.import_module(name)`` for ``who`` (the lipreg function that needs it).

    Raises:
        ImportError: naming ``name`` and either ``fix`` (how to put the host on the path)
            when ``name`` itself cannot be found, or the missing package and how to install
            it when ``name`` was found but imports something that is not installed.
    """
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing = e.name or ""
        host_absent = not missing or name == missing or name.startswith(missing + ".")
        if host_absent:
            raise ImportError(f"{who} needs the host's {name!r} module: {fix} ({e})") from e
        install = _INSTALL.get(missing, f"install it (pip install {missing})")
        raise ImportError(
            f"{who} needs the host's {name!r} module, which imports {missing!r}, a package "
            f"missing from this environment ({e}); {install}"
        ) from e
