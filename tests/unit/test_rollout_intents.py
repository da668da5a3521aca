"""The one intent-recording loop (controlplane/rollout/intents.py) both targets use."""

from __future__ import annotations

import pytest

from controlplane.errors import ConflictError
from controlplane.rollout.intents import ATTEMPTS, record_intent


def test_a_lost_race_is_tried_again_until_the_write_wins() -> None:
    results = iter([None, None, "written"])
    assert record_intent(lambda: next(results), "pause", "minilm") == "written"


def test_a_rollout_that_keeps_changing_is_one_clear_conflict() -> None:
    calls: list[int] = []

    def lose() -> None:
        calls.append(1)

    with pytest.raises(ConflictError, match="could not record abort on ns/minilm: the rollout kept changing"):
        record_intent(lose, "abort", "ns/minilm")
    assert len(calls) == ATTEMPTS


def test_a_refusal_is_not_retried() -> None:
    calls: list[int] = []

    def refuse() -> None:
        calls.append(1)
        raise ConflictError("rollout has ended: nothing to pause")

    with pytest.raises(ConflictError, match="has ended"):
        record_intent(refuse, "pause", "minilm")
    assert calls == [1]
