"""Schema changes: the migration API, its runs, journal, checksums and the at-head fast path."""
