"""The version's overall ``validation.status`` tag when the checks are run one at a time (one
step of the validation DAG each): the worst latest verdict of every check, whatever the order."""

from __future__ import annotations

import pytest

from validators.runner import version_status


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        ({}, {"validation.tokenizer-parity": "passed"}, "passed"),
        # a later passing step does not hide an earlier failure
        ({"validation.quantization-accuracy": "failed", "validation.status": "failed"},
         {"validation.head-collapse": "passed"}, "failed"),
        ({"validation.head-collapse": "warning"}, {"validation.long-seq-memory": "passed"}, "warning"),
        # a check run again replaces its own earlier verdict
        ({"validation.tokenizer-parity": "failed", "validation.status": "failed"},
         {"validation.tokenizer-parity": "passed"}, "passed"),
        ({"validation.long-seq-memory": "error"}, {"validation.head-collapse": "failed"}, "error"),
        # tags that are not verdicts of a known check are ignored
        ({"validation.run_id": "abc", "validation.baseline": "none", "validation.vibes": "failed"},
         {"validation.head-collapse": "passed"}, "passed"),
    ],
)
def test_overall_status_is_the_worst_latest_verdict(current: dict, new: dict, expected: str) -> None:
    assert version_status(current, new) == expected
