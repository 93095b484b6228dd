"""Tell a host name that does not exist from a name server that did not answer this time.

getaddrinfo's EAI_NONAME ("Name or service not known") and EAI_NODATA never heal by waiting: the name is
mistyped or gone. EAI_AGAIN ("Temporary failure in name resolution") does: a container's resolver that
is not up yet, or a DNS hiccup at boot. Drivers report either one directly, inside their own message, or
as the cause of their own error, so the whole chain of an error is read.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

_PERMANENT_CODES = frozenset(code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None),
                                               socket.EAI_SERVICE) if code is not None)
_PERMANENT_TEXT = ("name or service not known", "nodename nor servname provided", "no address associated with hostname")
_TEMPORARY_TEXT = ("temporary failure in name resolution",)


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error it wraps (SQLAlchemy's .orig), and their causes, each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


def unresolvable(error: BaseException) -> str | None:
    """The resolver's words when the error says the host name does not exist; None for a temporary failure
    or anything else."""
    for item in error_chain(error):
        if isinstance(item, socket.gaierror):
            return str(item.strerror or item) if item.errno in _PERMANENT_CODES else None
        text = str(item).lower()
        if any(marker in text for marker in _TEMPORARY_TEXT):
            return None
        marker = next((marker for marker in _PERMANENT_TEXT if marker in text), None)
        if marker is not None:
            return marker.capitalize()
    return None
