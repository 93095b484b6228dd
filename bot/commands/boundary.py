"""The one error boundary: set up .env, logging and configuration, run a command, map errors to exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from bot.collector import command_process
from bot.commands.output import OutputClosed
from bot.errors import ConfigError, ExitCode, Interrupted, ToolkitError
from bot.logs import configure_logging, get_logger
from bot.redact import register
from bot.settings.config import Config
from bot.settings.loading import load_config, load_env_file, logging_settings, secret_texts
from bot.signals import command_stop_signal

T = TypeVar("T")
log = get_logger("bot.boundary")


def prepare(*, log_summary: bool = False) -> Config:
    """Load .env, set up logging before validation (so errors are logged right), then validate."""
    try:
        load_env_file()
        env_file_problem = None
    except ConfigError as problem:  # raised once logging is set up: a JSON line in production like any error
        env_file_problem = problem
    terminal = sys.stderr.isatty()
    configure_logging(*logging_settings(os.environ, stderr_is_terminal=terminal))
    if env_file_problem is not None:
        raise env_file_problem
    register(secret_texts(os.environ))  # the raw values too, in case validation fails on them and says so
    config = load_config(os.environ, stderr_is_terminal=terminal)
    configure_logging(config.log_level, config.log_format)
    register(config.secrets())
    if log_summary:
        log.info("configuration loaded", **config.summary())
    return config


def run(command: Callable[[Config], T], *, log_summary: bool = False) -> T:
    """Run a command inside the boundary; on an error, log one line and exit with its code."""
    try:
        with command_process(), command_stop_signal():
            config = prepare(log_summary=log_summary)
            return command(config)
    except OutputClosed:
        raise SystemExit(int(ExitCode.OK)) from None
    except Interrupted as stop:
        log.info("stopped", reason=stop.line(), exit_code=int(stop.exit_code))
        raise SystemExit(int(stop.exit_code)) from None
    except ToolkitError as error:
        # A failed migration is the fail-fast case: critical, so alerting picks it up.
        emit = log.critical if error.exit_code == ExitCode.MIGRATION_FAILED else log.error
        emit("command failed", error=error.line(), exit_code=int(error.exit_code), **_loggable(error.fields))
        raise SystemExit(int(error.exit_code)) from None
    except KeyboardInterrupt:
        log.info("stopped", reason="interrupted", exit_code=int(ExitCode.INTERRUPTED))
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001 - the boundary logs everything else with its traceback
        log.error("unexpected error", error=f"{type(error).__name__}: {error}",
                  exit_code=int(ExitCode.UNEXPECTED), exc_info=error)
        raise SystemExit(int(ExitCode.UNEXPECTED)) from None


def _loggable(fields: dict[str, object]) -> dict[str, object]:
    """Extra fields an error carries, minus names that would clash with the event's own."""
    return {key: value for key, value in fields.items() if key not in ("event", "level", "error", "exit_code")}
