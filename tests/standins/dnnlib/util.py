"""``open_url(url)``: the hosts open snapshots by path or URL through this (stand-in written
for lipreg; it records what it opened)."""

from __future__ import annotations

import io
import urllib.request
from typing import IO

#: every path or URL opened, in order
opened: list[str] = []


def open_url(url: str) -> IO[bytes]:
    """A binary file object of a local path, a file:// URL or an http(s) URL."""
    opened.append(url)
    if "://" not in url:
        return open(url, "rb")  # the caller closes it
    with urllib.request.urlopen(url, timeout=30) as response:
        return io.BytesIO(response.read())
