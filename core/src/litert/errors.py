"""The one error type of litert.

Every failure a user can fix is raised as a LitertError carrying what went wrong and,
where we know it, how to fix it. The CLI prints it in one place (`litert.cli.main`) as
one line, plus the hint, and exits non-zero; nothing else in the code prints errors.
"""

from __future__ import annotations


class LitertError(Exception):
    """A problem the user can act on: `message` says what, `hint` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"

    def render(self) -> str:
        """The one line the CLI prints: `error: MESSAGE — HINT`."""
        return f"error: {self.message}" + (f" — {self.hint}" if self.hint else "")
