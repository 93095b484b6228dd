"""A Telegram bot that starts only on a database schema that is exactly right."""

__version__ = "0.1.0"
