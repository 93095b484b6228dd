"""The time-left figure each "migration applied" line carries, from journal durations and the run so far."""

from __future__ import annotations

import pytest

from bot.migrate.journal.recorder import RemainingEstimate


def test_known_durations_come_from_the_journal_and_unknown_ones_from_the_run_average() -> None:
    """Steps the journal timed count their own duration; the others count this run's average step."""
    estimate = RemainingEstimate.of(["a", "b", "c", "d"], {"c": 50.0, "d": 70.0})
    assert estimate.after(1, 10.0) == (pytest.approx(10.0 + 50.0 + 70.0), "journal+run")
    assert estimate.after(2, 30.0) == (pytest.approx(120.0), "journal")
    assert estimate.after(4, 200.0) == (0.0, None)


def test_no_estimate_before_a_step_when_some_durations_are_unknown() -> None:
    """With nothing timed yet and no journal figure for a step, the estimate says it does not know."""
    estimate = RemainingEstimate.of(["a", "b"], {})
    assert estimate.after(0, 0.0) == (None, None)
    assert estimate.after(1, 40.0) == (pytest.approx(40.0), "run")
    assert RemainingEstimate.of(["a"], {"a": 5.0}).after(0, 0.0) == (pytest.approx(5.0), "journal")
