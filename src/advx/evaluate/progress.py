"""Progress reporting of long evaluations: a callback type and a counter that drives it."""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(done, total, description)``: called after each unit of work.
Progress = Callable[[int, int, str], None]


class Counter:
    """Counts finished units of work and reports each step to an optional callback.

    Example:
        >>> seen = []
        >>> c = Counter(lambda done, total, desc: seen.append((done, total, desc)), 3)
        >>> c.add(2, "two units")
        >>> seen
        [(2, 3, 'two units')]
    """

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def add(self, k: int, desc: str) -> None:
        """Mark ``k`` more units done, described by ``desc``."""
        self.done += k
        if self.progress is not None:
            self.progress(self.done, self.total, desc)
