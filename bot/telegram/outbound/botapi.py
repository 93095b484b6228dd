"""A few Bot API calls over plain http.client, for commands that must not pay for importing aiogram."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from bot.settings.config import Config
from bot.settings.table import TELEGRAM_API_DEFAULT


class BotApiError(Exception):
    """A Bot API call failed; the message never contains the token."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


def call(config: Config, method: str, params: dict[str, Any] | None = None, *, timeout: float = 3.0) -> Any:
    """POST one method and return its `result`; BotApiError on any failure, within `timeout` seconds."""
    token = config.require_bot_token().reveal()
    base = urlsplit(config.telegram_api_url or TELEGRAM_API_DEFAULT)
    https = base.scheme == "https"
    host = base.hostname or ""
    port = base.port or (443 if https else 80)
    path = f"{base.path.rstrip('/')}/bot{token}/{method}"
    body = urlencode({key: _encoded(value) for key, value in (params or {}).items()})
    deadline = time.monotonic() + timeout
    connection = _connection(config, host, port, https, timeout)
    try:
        connection.request("POST", path, body=body,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        connection.sock.settimeout(max(deadline - time.monotonic(), 0.05))
        response = connection.getresponse()
        raw = response.read()
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        raise BotApiError(f"{type(error).__name__}: {_scrub(str(error), token)}".rstrip(": ")) from None
    finally:
        connection.close()
    try:
        payload = json.loads(raw)
    except ValueError:
        raise BotApiError(f"HTTP {status} with a body that is not JSON", status) from None
    if not isinstance(payload, dict) or not payload.get("ok"):
        description = payload.get("description") if isinstance(payload, dict) else None
        raise BotApiError(f"HTTP {status}: {_scrub(str(description or 'no description'), token)}", status)
    return payload.get("result")


def _connection(config: Config, host: str, port: int, https: bool, timeout: float) -> http.client.HTTPConnection:
    """A connection to the Bot API, through TELEGRAM_PROXY when one is set."""
    if https:
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    if config.telegram_proxy is not None:
        try:
            from python_socks.sync import Proxy  # only with TELEGRAM_PROXY set

            sock = Proxy.from_url(config.telegram_proxy.reveal()).connect(dest_host=host, dest_port=port,
                                                                         timeout=timeout)
            if https:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        except Exception as error:  # noqa: BLE001 - python_socks raises its own error types
            raise BotApiError(f"the proxy failed: {type(error).__name__}") from None
        connection.sock = sock
    return connection


def _encoded(value: Any) -> str:
    """Bot API form values: scalars as text, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _scrub(text: str, token: str) -> str:
    """Never let the token out through an error message."""
    return text.replace(token, "***")
