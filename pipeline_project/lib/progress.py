"""A progress bar for management commands: drawn (rich) when their output is a terminal, nothing
otherwise (cron, the scheduler, logs, tests)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _nothing(advance: int) -> None:
    pass


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress_bar(stream, *, total: Callable[[], int], description: str) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``. ``total`` is called (a count query) only when a bar is drawn."""
    if not is_terminal(stream):
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import Progress

    console = Console(file=getattr(stream, "_out", stream))  # Django's OutputWrapper adds line endings
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(description, total=total())
        yield lambda advance: progress.advance(task, advance)
