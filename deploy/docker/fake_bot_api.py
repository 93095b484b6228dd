"""The fake Bot API for deploy/docker/smoke.sh: serves on 127.0.0.1, sends /start once the bot polls, prints the reply.

Usage: python deploy/docker/fake_bot_api.py URL_FILE TOKEN   (runs until killed)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.fake_telegram import FakeTelegram  # noqa: E402 - after the path set-up above


def main() -> None:
    """Serve, write the address where the script reads it, drive one update, then serve until killed."""
    url_file, token = Path(sys.argv[1]), sys.argv[2]
    with FakeTelegram() as server:
        url_file.write_text(server.url)
        server.wait_for("getUpdates", token=token, timeout=300)
        server.push_message(token, "/start", user_id=777, first_name="Smoke")
        reply = server.wait_for("sendMessage", token=token, timeout=120,
                                predicate=lambda call: call.params["chat_id"] == "777")[0]
        print(f"reply to chat {reply.params['chat_id']}: {reply.params['text']!r}", flush=True)
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
