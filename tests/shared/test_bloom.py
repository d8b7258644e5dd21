"""The blocked Bloom filter behind the gateway's dedupe window: never a false "no"."""

from __future__ import annotations

import uuid

import pytest

from shared.kernel.bloom import BloomBlock


def _ids(n: int) -> list[str]:
    return [f"evt_{uuid.uuid4().hex}" for _ in range(n)]


def test_everything_added_is_found_and_few_others_are() -> None:
    block = BloomBlock(50_000)
    added, others = _ids(50_000), _ids(50_000)
    block.update(added[:25_000])
    block.update(iter(added[25_000:]))  # any iterable, added to what is there
    assert all(item in block for item in added), "a Bloom filter never forgets"
    false_positives = sum(item in block for item in others)
    # About 0.4% at sixteen bits an id; well above that means the hashing is broken.
    assert false_positives < 0.01 * len(others), false_positives
    assert block.count == 50_000 and block.full
    assert block.nbytes == 50_000 * 16 // 8


def test_an_empty_block_holds_nothing() -> None:
    block = BloomBlock(1000)
    assert not any(item in block for item in _ids(1000))
    assert not block.full


def test_more_bits_mean_fewer_false_positives() -> None:
    added, others = _ids(20_000), _ids(50_000)
    rates = []
    for bits in (8, 32):
        block = BloomBlock(len(added), bits_per_item=bits)
        block.update(added)
        rates.append(sum(item in block for item in others))
    assert rates[1] < rates[0]


def test_nonsense_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        BloomBlock(0)
