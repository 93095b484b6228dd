"""The image's HEALTHCHECK: GET /livez where the bot listens. Standard library only, so a probe costs little.

`python -m bot.probe` exits 0 when /livez answers 200 (or when HEALTH_PORT is unset: then the process itself
is the health signal), 1 otherwise, printing why.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

# A listener bound to every address is reached on loopback; one bound to a single address only there.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
DEFAULT_HOST = "127.0.0.1"
PROBE_TIMEOUT = 4.0


def liveness_url(environ: Mapping[str, str]) -> str | None:
    """The /livez address for HEALTH_HOST/HEALTH_PORT, or None when no health listener is configured."""
    port = environ.get("HEALTH_PORT", "").strip()
    if not port:
        return None
    host = environ.get("HEALTH_HOST", DEFAULT_HOST).strip()
    host = _ANY_ADDRESS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/livez"


def probe(environ: Mapping[str, str], timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Whether the bot's loop answers, and what was seen."""
    url = liveness_url(environ)
    if url is None:
        return True, "HEALTH_PORT is not set: nothing to probe"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url} answered {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"{url} answered {error.code}"
    except (OSError, ValueError) as error:
        return False, f"{url} did not answer: {error}"


def main() -> None:
    """Exit 0 when alive, 1 when not."""
    alive, detail = probe(os.environ)
    print(detail, file=sys.stdout if alive else sys.stderr)
    raise SystemExit(0 if alive else 1)


if __name__ == "__main__":
    main()
