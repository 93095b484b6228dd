"""One idempotent logging setup: structlog for our events, stdlib loggers routed through it, to stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict

from bot.redact import redact

_HANDLER_NAME = "bot-toolkit"
_LOGGED_MARK = "_bot_toolkit_logged"
# The fields of the update this task is handling (update_id, chat_id, user_id, handler, …), merged into every line.
_update_fields: ContextVar[MutableMapping[str, object] | None] = ContextVar("bot_update_fields", default=None)


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is at emit time (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _DropAlembicChatter(logging.Filter):
    """Alembic announces its dialect and DDL mode on every connection; that tells an operator nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "alembic.runtime.migration"
                    and str(record.msg).startswith(("Context impl", "Will assume", "Generating static SQL")))


class _DropRelogged(logging.Filter):
    """aiogram (and asyncio, for a webhook task) log a handler's exception again, without the update's context.

    The update middleware has already logged it with update_id, chat_id, user_id and handler: once is enough.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not already_logged(error)


def mark_logged(error: BaseException) -> None:
    """Note that this exception has been logged with its context, so later copies of it are dropped."""
    try:
        setattr(error, _LOGGED_MARK, True)
    except AttributeError:
        pass  # an exception type without a __dict__: it is then logged twice, never lost


def bind_update(fields: MutableMapping[str, object]) -> Token[MutableMapping[str, object] | None]:
    """Add these fields to every line this task logs until unbind_update(); later changes to the mapping show too.

    One ContextVar holding one mapping, rather than structlog's bind_contextvars (a ContextVar per key, set and
    reset for every update): the same contextvars mechanism, at a fraction of the cost on the per-update path.
    """
    return _update_fields.set(fields)


def unbind_update(token: Token[MutableMapping[str, object] | None]) -> None:
    """Stop adding the update's fields (the task goes back to what it had before bind_update)."""
    _update_fields.reset(token)


def _add_update_fields(_logger: object, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor: the current update's fields, unless the event sets one of them itself."""
    fields = _update_fields.get()
    if fields:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict


def already_logged(error: BaseException) -> bool:
    """Whether mark_logged() was called on this exception."""
    return bool(getattr(error, _LOGGED_MARK, False))


def _redact_values(_logger: object, _name: str, event_dict: EventDict) -> EventDict:
    """Before JSON rendering: every string of the event (keys, values, nested ones) through the one redactor.

    Done on the values, not on the rendered line, so a secret made of JSON's own punctuation cannot break the
    line's structure; a value JSON cannot hold is turned into its repr first, as the renderer would.
    """
    return {_redacted(key): _redacted(value) for key, value in event_dict.items()}


def _redacted(value: Any) -> Any:
    """A value with every string in it redacted; what JSON cannot hold becomes its (redacted) repr."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {_redacted(key): _redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item) for item in value]
    return redact(repr(value))


def _redact_line(_logger: object, _name: str, rendered: str | EventDict) -> str:
    """After console rendering: the rendered line through the one redactor.

    structlog types every processor's input as an event dict, hence the wider parameter.
    """
    assert isinstance(rendered, str), "_redact_line must come after the renderer"
    return redact(rendered)


def _shared_processors() -> list[Any]:
    """The processors every event passes, ours and stdlib's alike."""
    return [
        structlog.contextvars.merge_contextvars,
        _add_update_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route everything to stderr as JSON lines or console lines; safe to call again to change either."""
    shared = _shared_processors()
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    if fmt == "json":
        final: list[Any] = [structlog.processors.format_exc_info, _redact_values, structlog.processors.JSONRenderer()]
    else:
        final = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()), _redact_line]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(_DropAlembicChatter())
    handler.addFilter(_DropRelogged())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    # SQLAlchemy's engine logger echoes SQL at INFO; keep it for DEBUG runs only.
    quiet = "DEBUG" if level == "DEBUG" else "WARNING"
    logging.getLogger("sqlalchemy.engine").setLevel(quiet)
    # Alembic announces each of its plugins at INFO whenever it loads; that is start-up noise.
    logging.getLogger("alembic.runtime.plugins").setLevel(quiet)
    # sqlglot warns when it keeps a statement it cannot fully parse as raw text; the review reports that itself.
    logging.getLogger("sqlglot").setLevel("ERROR")
    # aiogram logs every update at INFO ("Update id=… is handled"); `update finished` (debug) replaces it.
    logging.getLogger("aiogram.event").setLevel("WARNING")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named like a stdlib one, so the level and routing apply."""
    return structlog.stdlib.get_logger(name)
