"""Stopping on SIGINT / SIGTERM at the next safe point instead of mid-update, and at once on
a second SIGINT."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Interrupted(KeyboardInterrupt):
    """Raised by a second SIGINT while :meth:`StopRequest.installed` is active: the user does
    not want to wait for the iteration to end."""


class StopRequest:
    """Set by SIGINT or SIGTERM while :meth:`installed` is active; the loop polls
    :attr:`requested` between steps, saves a checkpoint and returns.

    The first signal is acknowledged on stderr at once (with ``announce``): an iteration or
    an evaluation may take minutes. A second SIGINT raises :class:`Interrupted` where the
    program is, and so does every later one (a ``KeyboardInterrupt``, so that no
    ``except Exception`` swallows it).
    """

    def __init__(self, announce: bool = True) -> None:
        self.requested = False
        self.signal_name = ""
        self.announce = announce

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise Interrupted
        if self.requested:
            return
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self.announce:
            again = "; press Ctrl-C again to stop at once" if signum == signal.SIGINT else ""
            # os.write, not print: the handler may run in the middle of a print
            os.write(
                2,
                f"\nlipreg train: {self.signal_name} received, stopping after this iteration "
                f"with a checkpoint{again}\n".encode(),
            )

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM inside the block (only the main thread can), then restore
        the previous handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
