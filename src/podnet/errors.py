"""The one exception family users see.

Anything raised as a PodnetError is printed by the CLI as a single line and turned
into a non-zero exit; anything else is a bug and keeps its traceback.
"""

import re


class PodnetError(Exception):
    """A problem the user can act on; str() is the whole message."""

    heading = "error"  # what the CLI prints before it


class ManifestError(PodnetError):
    """A manifest or lab file is invalid; names the file, the field and the problem."""

    def __init__(self, field: str, problem: str, source: str = "") -> None:
        self.field = field
        self.problem = problem
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where = ": ".join(part for part in (self.source, self.field) if part)
        return _one_line(f"{where}: {self.problem}" if where else self.problem)

    def in_source(self, source: str) -> "ManifestError":
        """The same error, attributed to a file."""
        return ManifestError(self.field, self.problem, source)


def _one_line(text: str) -> str:
    """Control characters from a document (a key "a\nb") shown escaped, so the error stays one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)


class KernelError(PodnetError):
    """The kernel refused an operation; names the namespace and the object."""


class LabError(PodnetError):
    """A lab cannot be brought up, found or torn down as asked."""
