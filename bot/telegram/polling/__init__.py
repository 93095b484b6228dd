"""Polling and leadership: one elected poller per token, confirming only handled updates, 409 conflicts."""
