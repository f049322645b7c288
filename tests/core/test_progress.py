"""The progress line: drawn on a terminal only, with counts, rate and time left."""

from __future__ import annotations

import io

from maskserve.progress import Progress, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_counts_rate_and_time_left() -> None:
    progress = Progress("evaluate", 500, Terminal())
    progress.done = 100
    assert progress.line(50.0).startswith("evaluate: 100/500 (20%) 2.0/s, ~3m left")


def test_drawn_on_a_terminal_and_ended_with_a_newline() -> None:
    screen = Terminal()
    progress = Progress("predict", 2, screen)
    progress.advance()
    progress.advance()
    text = screen.getvalue()
    assert "\rpredict: 2/2 (100%)" in text and text.endswith("\n")


def test_silent_when_not_a_terminal() -> None:
    pipe = io.StringIO()
    progress = Progress("export", 3, pipe)
    for _ in range(3):
        progress.advance()
    assert pipe.getvalue() == ""
    assert list(track(range(3), 3, "x")) == [0, 1, 2]
