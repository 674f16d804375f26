"""Progress bars that stay readable in a log file: tqdm's live bar on a terminal, and plain lines
every few seconds, without carriage returns, when stderr is a file or a pipe (``| tee log``).
"""

from __future__ import annotations

import sys

#: Seconds between progress lines when stderr is not a terminal.
LINE_INTERVAL = 10.0


class _Lines:
    """The stream tqdm writes to off a terminal: each redraw (``'\\r' + status``) becomes one line,
    so a log keeps a few readable lines instead of one line of thousands of redraws."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str):
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self):
        self.stream.flush()


def progress_bar(iterable=None, **options):
    """``tqdm(iterable, **options)``: a live bar on a terminal or in a notebook; elsewhere the same
    figures as a plain line every ``LINE_INTERVAL`` seconds, and one when it ends.

    >>> for _ in progress_bar(range(3), desc="demo", disable=True):
    ...     pass
    """
    if sys.stderr.isatty() or "ipykernel" in sys.modules:
        from tqdm.auto import tqdm

        return tqdm(iterable, **options)
    from tqdm import tqdm

    options.pop("dynamic_ncols", None)  # needs a terminal to measure
    return tqdm(iterable, file=_Lines(sys.stderr), mininterval=LINE_INTERVAL, ascii=True, **options)
