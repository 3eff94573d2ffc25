"""`hedgerctl watch`: the status table, redrawn in place every interval until Ctrl-C.

Plain ANSI (cursor home, clear to end of line and of screen): no curses. When the output is
not a terminal, frames follow each other separated by a blank line. The fetch, the sleep and
the number of frames are injected, so tests run it without a daemon's timing or real sleeps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from hedgerd.control.render import render_status

HOME, CLEAR_SCREEN, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[2J", "\x1b[K", "\x1b[J"


class WatchRefusedError(Exception):
    """The daemon answered the status request with an error (hedgerctl's "refused")."""


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """`interval_s`: wall seconds between frames; `count`: frames to draw (None: until
    interrupted); `tty`: redraw in place (else append frames)."""

    interval_s: float = 1.0
    count: int | None = None
    tty: bool = True


def frame(text: str, *, first: bool, tty: bool) -> str:
    """What to write for one frame of `text`."""
    if not tty:
        return ("" if first else "\n") + text + "\n"
    body = "".join(line + CLEAR_LINE + "\n" for line in text.split("\n"))
    return (CLEAR_SCREEN if first else "") + HOME + body + CLEAR_BELOW


async def watch(
    fetch: Callable[[], Awaitable[Mapping[str, Any]]],
    out: TextIO,
    settings: WatchSettings,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Draw frames until `settings.count` is reached (or forever). The first fetch's error
    propagates (nothing to watch); a later one is shown in place of the table and retried,
    since a daemon restarting is what an operator watches for."""
    drawn = 0
    while settings.count is None or drawn < settings.count:
        if drawn:
            await sleep(settings.interval_s)
        try:
            text = render_status(await fetch())
        except (OSError, TimeoutError, WatchRefusedError) as exc:
            if not drawn:
                raise
            text = f"hedgerctl watch: no status ({exc}); retrying every {settings.interval_s:g} s"
        out.write(frame(text, first=not drawn, tty=settings.tty))
        out.flush()
        drawn += 1


__all__ = ["WatchRefusedError", "WatchSettings", "frame", "watch"]
