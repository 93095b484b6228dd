"""The outbound Bot API: pacing under Telegram's limits, admin notices, plain-HTTP calls without aiogram."""
