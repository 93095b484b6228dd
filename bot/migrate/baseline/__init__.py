"""Baselines: a long history squashed into one verified step that fresh databases take instead of replaying it."""
