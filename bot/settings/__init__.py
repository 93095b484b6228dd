"""Settings: every variable declared once (table), read into frozen data (loading, config), documented from it."""
