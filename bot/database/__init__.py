"""Database access: URLs, engines, models, migrations and the locks that guard them."""
