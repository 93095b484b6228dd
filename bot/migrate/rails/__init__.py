"""The rails around a schema change: guards, backups, restore, the databases' own tools."""
