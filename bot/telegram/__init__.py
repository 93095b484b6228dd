"""The aiogram side: importing this package costs seconds, so only `start` does."""
