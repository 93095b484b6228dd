"""Where the project lives, so every entry point resolves files the same way from any directory."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
ENV_FILE = PROJECT_ROOT / ".env"
DEFAULT_SQLITE_FILE = PROJECT_ROOT / "data" / "bot.db"
