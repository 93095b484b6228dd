"""The collector policy of a command process: loads paused and frozen inside a command, untouched elsewhere."""

from __future__ import annotations

import gc

import pytest

from bot.collector import command_process, loading


def test_inside_a_command_loading_pauses_the_collector_then_freezes_what_was_built() -> None:
    """Objects built while loading in a command are frozen, and the collector runs again afterwards."""
    frozen_before = gc.get_freeze_count()
    with command_process(), loading():
        assert not gc.isenabled()
        built = [[index] for index in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(built)


def test_outside_a_command_loading_changes_nothing() -> None:
    """A program calling the API itself keeps its collector running and nothing of it frozen."""
    frozen_before = gc.get_freeze_count()
    with loading():
        assert gc.isenabled()
        [[index] for index in range(1000)]
    assert gc.get_freeze_count() == frozen_before


def test_a_failed_load_in_a_command_still_turns_the_collector_back_on() -> None:
    """An import error inside the block propagates, and the collector is enabled again."""
    with pytest.raises(ImportError), command_process(), loading():
        raise ImportError("No module named 'alembic'")
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused() -> None:
    """Loading inside a command does not turn on a collector its caller had turned off."""
    gc.disable()
    with command_process(), loading():
        pass
    assert not gc.isenabled()
