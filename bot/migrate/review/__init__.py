"""The migration review: SQL read by real parsers, judged by named rules, online and offline."""
