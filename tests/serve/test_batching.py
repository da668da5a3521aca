"""The batcher's cut of length-sorted texts (pure): bounded padded tokens, similar lengths per batch."""

from __future__ import annotations

from controlplane.serve.batcher import PAD_RATIO, PAD_SLACK, split_by_length


def test_batches_keep_order_bound_tokens_and_keep_lengths_similar() -> None:
    lengths = sorted([5, 6, 6, 7, 9, 12, 14, 30, 31, 33, 40, 100, 110, 120, 128, 128, 128, 128])
    batches = split_by_length(lengths, max_tokens=256)
    assert [k for batch in batches for k in batch] == list(range(len(lengths)))  # every text once, in order
    for batch in batches:
        longest, shortest = lengths[batch[-1]], lengths[batch[0]]
        assert len(batch) * longest <= 256 or len(batch) == 1
        assert longest <= PAD_RATIO * shortest + PAD_SLACK
    assert [lengths[k] for k in batches[0]] == [5, 6, 6, 7, 9, 12, 14]  # short queries are not padded to 128


def test_a_text_longer_than_the_budget_runs_alone() -> None:
    assert split_by_length([4, 500, 500], max_tokens=256) == [[0], [1], [2]]
