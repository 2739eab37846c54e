"""Warnings for values that are legal but surprising: one line on stderr, and the run goes on.

Each distinct line is printed once per process, so a sweep of a thousand configurations that
share a workload warns once, not a thousand times.
"""

import sys

_seen: set[str] = set()


def warn(source: str, field: str, message: str) -> None:
    """Prints ``warning: SOURCE: FIELD: MESSAGE`` on stderr, unless this line was printed."""
    line = f"warning: {source}: {field}: {message}"
    if line not in _seen:
        _seen.add(line)
        print(line, file=sys.stderr)
