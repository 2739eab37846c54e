"""The one-line error of profile files and predictor artifacts (no pandas, no training stack)."""

from __future__ import annotations

from frontier_jax.spec.errors import SpecError, one_line, short_repr


class DataError(SpecError):
    """A profile file or predictor artifact that cannot be used. The message is one line:
    ``{file}: {field}: {problem}; allowed: {allowed}`` (for profiles ``field`` is
    ``column <name>``; ``problem`` names the row and the value when one value is at fault).

    ``internal`` is True for an error that no explicit check caught (a reader failed on an
    input it did not expect): still one line naming the file, but less specific.
    """

    def __init__(self, source: str, field: str, problem: str, allowed: str,
                 internal: bool = False) -> None:
        self.source = str(source)
        self.field = str(field)
        self.problem = " ".join(str(problem).split())
        self.value = self.problem
        self.allowed = " ".join(str(allowed).split())
        self.internal = internal
        ValueError.__init__(self, f"{one_line(self.source)}: {one_line(self.field)}: "
                                  f"{one_line(self.problem)}; allowed: {one_line(self.allowed)}")

    def __reduce__(self):
        return (type(self), (self.source, self.field, self.problem, self.allowed, self.internal))


def _show(v) -> str:
    """A cell value for an error message (short, one line)."""
    text = short_repr(v)
    return text if len(text) <= 80 else text[:60] + "..." + text[-15:]
