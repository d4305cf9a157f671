"""Progress lines on stderr, at most one every few seconds, so long steps show they are alive."""

from __future__ import annotations

import sys
import time


class Progress:
    """`say` prints when `every_seconds` have passed since the last line; `note` always prints."""

    def __init__(self, every_seconds: float = 5.0, stream=None) -> None:
        self.every_seconds = every_seconds
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last = float("-inf")

    def note(self, text: str) -> None:
        self._last = time.monotonic()
        print(f"[{self._last - self.started:7.1f}s] {text}", file=self.stream, flush=True)

    def say(self, text: str) -> None:
        if time.monotonic() - self._last >= self.every_seconds:
            self.note(text)
