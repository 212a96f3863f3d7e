"""Stage-by-stage progress on stderr, and native library chatter kept out of sight.

litert-torch, TensorFlow and LiteRT-LM write logs straight to file descriptors 1 and 2
from C++; `captured_native_output` points those descriptors at a log file while the
heavy work runs, so the user sees our stages, and the log is there when it fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TextIO


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def human_time(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM, raised where the program is.

    Not a KeyboardInterrupt: typer turns those into a silent exit 130 before the CLI's
    one place for messages sees them, and some libraries swallow them in bare `except:`
    clauses. The handler also remembers the signal, and every stage boundary raises it
    again, so an interrupt swallowed inside a library still stops the work at the latest
    when the stage ends; `finally` blocks clean up on the way out.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_PENDING: int | None = None


def _on_signal(signum: int, frame: object) -> None:
    global _PENDING
    _PENDING = signum
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise Interrupted (native libraries may reinstall theirs: call again after loading them)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back while native libraries load (torch, TensorFlow may install
    handlers of their own, under which a signal ends the process without a word), then our
    handlers installed again and a held signal delivered to them: raised as Interrupted.

    Held twice, because a signal sent to the process goes to any thread that does not block
    it, and by now the tokenizer's and transformers' threads exist: blocked in this thread,
    and noted (not raised in the middle of an import) by the Python-level handler, which runs
    in this thread whichever thread the signal reached."""
    import signal

    held = (signal.SIGINT, signal.SIGTERM)
    noted: list[int] = []
    for sig in held:
        signal.signal(sig, lambda signum, frame: noted.append(signum))
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        install_signal_handlers()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # one blocked here arrives now, raised
        if noted:
            _on_signal(noted[0], None)


def check_interrupted() -> None:
    """Raise Interrupted if a signal arrived that something swallowed."""
    global _PENDING
    if _PENDING is not None:
        signum, _PENDING = _PENDING, None
        raise Interrupted(signum)


def clear_interrupted() -> None:
    """Forget a handled interrupt (e.g. Ctrl-C that only stopped one chat answer)."""
    global _PENDING
    _PENDING = None


_LINE_OPEN = False
"""A stage line ("[2/7] Planning ...") waits for its "done"."""


def warn(text: str) -> None:
    """A warning on its own line, even in the middle of a stage line."""
    global _LINE_OPEN
    stream = _private_stderr()
    if _LINE_OPEN:
        print(file=stream)
        _LINE_OPEN = False
    print(text, file=stream, flush=True)


class Progress:
    """Prints `[i/n] stage ... done (t)` lines, to a stream that survives fd redirection."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.index = 0
        self.start = time.monotonic()
        self.stream = stream or _private_stderr()

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def stage(self, title: str, open_line: bool = False) -> Iterator[None]:
        """One stage; `open_line` when the stage prints progress bars of its own."""
        self.index += 1
        t0 = time.monotonic()
        end = "\n" if open_line else ""
        lead = "      " if open_line else " "
        global _LINE_OPEN
        print(f"[{self.index}/{self.total}] {title} ...", end=end, file=self.stream, flush=True)
        _LINE_OPEN = not open_line and self.stream is _private_stderr()
        install_signal_handlers()

        def close(word: str) -> None:
            global _LINE_OPEN
            # A warning broke the stage line: the closing word goes on a line of its own.
            indent = lead if _LINE_OPEN or open_line else "      "
            _LINE_OPEN = False
            print(f"{indent}{word}", file=self.stream, flush=True)

        try:
            yield
            check_interrupted()
        except BaseException:
            close("failed")
            raise
        close(f"done ({human_time(time.monotonic() - t0)})")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


_PRIVATE: TextIO | None = None


def _private_stderr() -> TextIO:
    """A duplicate of the original stderr, unaffected when fd 2 is pointed elsewhere."""
    global _PRIVATE
    if _PRIVATE is None or _PRIVATE.closed:  # (a test harness that swapped sys.stderr closed it)
        try:
            _PRIVATE = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (OSError, AttributeError, ValueError):
            _PRIVATE = sys.stderr
    return _PRIVATE


@contextlib.contextmanager
def captured_native_output(
    log_path: Path, enabled: bool = True, fds: tuple[int, ...] = (1, 2)
) -> Iterator[IO[str] | None]:
    """Send `fds` (C++ logs, Python warnings, progress bars) to `log_path` meanwhile."""
    if not enabled:
        yield None
        return
    _private_stderr()  # keep a handle on the real stderr before fd 2 moves
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with open(log_path, "a", encoding="utf-8", errors="replace") as log:
        try:
            for fd in fds:
                os.dup2(log.fileno(), fd)
            yield log
        finally:
            try:
                _flush_into_log(fds)
            finally:
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                    os.close(copy)


def _flush_into_log(fds: tuple[int, ...]) -> None:
    """Flush what Python buffered for the log while the fds still point at it. A log that
    cannot take it (its disk full) must not keep fd 2 pointing at it — the error the user is
    about to read would go there — nor spill the library's progress bars onto the terminal
    later: what does not fit is dropped into /dev/null."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            with open(os.devnull, "w") as null:
                for fd in fds:
                    os.dup2(null.fileno(), fd)
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()


class Steps:
    """Progress inside a long stage (the export's signatures), one step at a time.

    On a terminal: a live `rich` display with the step, how many are done, the elapsed
    time and an estimate of what is left (from the steps done so far). Elsewhere: one
    plain line per finished step, `      tracing prefill_8 (1/7) ... 26.1 s`.
    """

    def __init__(self, total: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or _private_stderr()
        self.live = self.stream.isatty() if live is None else live
        self.label: str | None = None
        self.t0 = self.started = time.monotonic()
        self._rich: object | None = None
        self._task: object | None = None

    def __enter__(self) -> Steps:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._rich = Progress(
                TextColumn("      {task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
                # Python-level output (warnings, progress bars) stays on fd 1/2, which
                # captured_native_output sends to the log: not into the display.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._rich.start()  # type: ignore[attr-defined]
            self._task = self._rich.add_task("preparing", total=self.total)  # type: ignore[attr-defined]
        return self

    def __call__(self, label: str) -> None:
        """A new step starts; the previous one is done."""
        self._finish_current()
        self.label, self.t0 = label, time.monotonic()
        if self._rich is not None:
            self._rich.update(self._task, description=label)  # type: ignore[attr-defined]

    def restart(self, total: int, note: str) -> None:
        """Start over with `total` steps, saying why (`note`, one line)."""
        self.label, self.done, self.total = None, 0, total
        if self._rich is not None:
            self._rich.console.print(f"      {note}")  # type: ignore[attr-defined]
            self._rich.update(self._task, completed=0, total=total)  # type: ignore[attr-defined]
        else:
            print(f"      {note}", file=self.stream, flush=True)

    def _finish_current(self) -> None:
        if self.label is None:
            return
        self.done += 1
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done)  # type: ignore[attr-defined]
        else:
            print(
                f"      {self.label} ({self.done}/{self.total}) ... {human_time(time.monotonic() - self.t0)}",
                file=self.stream,
                flush=True,
            )
        self.label = None

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self._finish_current()
        if self._rich is not None:
            self._rich.stop()  # type: ignore[attr-defined]
