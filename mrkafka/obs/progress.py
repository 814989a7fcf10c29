"""A progress bar on stderr (done of total, MB/s or what its owner says) while stderr is a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click

from mrkafka.core.report import rate

__all__ = ["Progress"]


class Progress:
    """Counts units (splits, records) and bytes; draws a bar only on a terminal, beside it the
    bytes per second, or what ``detail()`` says."""

    def __init__(
        self, total: int, label: str, enabled: bool | None = None, detail: Callable[[], str] | None = None
    ) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.bytes = 0
        self.done = 0
        self._detail = detail
        self._bar = None
        if self.enabled and total:
            self._bar = click.progressbar(
                length=total, label=label, file=sys.stderr, item_show_func=self._rate, show_pos=True
            )
            self._bar.__enter__()

    def _rate(self, _item: object) -> str:
        return self._detail() if self._detail else rate(self.bytes, time.monotonic() - self.started)

    def advance(self, units: int = 1, nbytes: int = 0) -> None:
        self.bytes += nbytes
        self.done += units
        if self._bar is not None:
            self._bar.update(units, current_item=True)

    def advance_to(self, done: int) -> None:
        """Move the bar to ``done`` units (never back), and draw what ``detail()`` says now."""
        if done > self.done:
            self.advance(done - self.done)
        elif self._bar is not None:
            self._bar.render_progress()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
