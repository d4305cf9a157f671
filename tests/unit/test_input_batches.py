"""Input batch frames: encode/decode round trips byte for byte, and batches are cut to size."""

from __future__ import annotations

import os
import zlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.input_batches import (
    MAX_BATCH_BYTES,
    MAX_FRAME_BYTES,
    MAX_HOLD_SECONDS,
    MAX_IN_FLIGHT_BATCHES,
    MAX_RECORDS_PER_BATCH,
    InputRecord,
    decode_batch,
    due_batches,
    encode_batch,
    encode_frames,
    split_batches,
)

records_strategy = st.lists(
    st.builds(InputRecord,
              offset=st.integers(min_value=0, max_value=2**62),
              timestamp_ms=st.one_of(st.none(), st.integers(min_value=0, max_value=2**50)),
              key=st.one_of(st.none(), st.binary(max_size=40)),
              value=st.one_of(st.none(), st.binary(max_size=300))),
    min_size=1, max_size=30)


@given(records=records_strategy, partition=st.integers(min_value=0, max_value=1023))
def test_a_frame_gives_back_every_record_byte_for_byte(records, partition):
    batch = decode_batch(encode_batch(partition, records, forwarded_at_ms=1_795_000_000_000))
    assert batch.partition == partition
    assert batch.forwarded_at_ms == 1_795_000_000_000
    assert batch.records == records
    assert batch.last_offset == records[-1].offset


def test_values_with_newlines_and_invalid_utf8_survive():
    records = [InputRecord(7, 1, b"k\n", b'{"a":\n1}'), InputRecord(8, None, None, b"\xff\xfe\n\x00")]
    assert decode_batch(encode_batch(0, records, 5)).records == records


@pytest.mark.parametrize("frame", [b"", b"no header line", b'{"v":2}\n', b"[1]\n",
                                   b'{"v":1,"p":0,"r":0,"o":[1],"ts":[null],"k":[-1],"n":[5]}\nabc'])
def test_anything_else_is_refused(frame):
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode_batch(frame)


def test_a_frame_is_compressed_and_an_uncompressed_one_still_reads():
    records = [InputRecord(i, 1_795_000_000_000 + i, b"contact-%d" % i,
                           b'{"event_id":"e-%d","type":"contact.queued","queue":"sales"}' % i) for i in range(500)]
    frame = encode_batch(3, records, 9)
    plain = zlib.decompress(frame)
    assert plain.startswith(b'{"v":1,') and len(frame) * 5 < len(plain)
    # As workers before compression wrote it (a rolling upgrade reads their batches).
    assert decode_batch(plain).records == records
    assert decode_batch(frame).records == records


def test_a_frame_that_does_not_compress_below_the_limit_is_split_in_order():
    records = [InputRecord(i, None, None, os.urandom(100_000)) for i in range(25)]  # random: incompressible
    frames = encode_frames(1, records, 0)
    assert len(frames) > 2 and all(len(frame) <= MAX_FRAME_BYTES for frame in frames)
    assert [r for frame in frames for r in decode_batch(frame).records] == records
    compressible = [InputRecord(i, None, None, b"x" * 1000) for i in range(3000)]
    assert len(encode_frames(1, compressible, 0)) == 1


def test_a_corrupt_compressed_frame_is_refused_as_a_value_error():
    frame = encode_batch(0, [InputRecord(1, None, None, orjson.dumps({"a": 1}))], 0)
    with pytest.raises(ValueError, match="not an input batch"):
        decode_batch(frame[:-3])


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="at least one record"):
        encode_batch(0, [], 0)


def test_batches_are_cut_by_count_and_by_size_and_keep_the_order():
    small = [InputRecord(i, None, None, b"x" * 10) for i in range(MAX_RECORDS_PER_BATCH * 2 + 5)]
    cut = split_batches(small)
    assert [len(b) for b in cut] == [MAX_RECORDS_PER_BATCH, MAX_RECORDS_PER_BATCH, 5]
    assert [r for b in cut for r in b] == small

    big = [InputRecord(i, None, b"k", b"y" * (MAX_BATCH_BYTES // 3)) for i in range(7)]
    cut = split_batches(big)
    assert all(sum(len(r.value) for r in b) <= MAX_BATCH_BYTES for b in cut)
    assert [r for b in cut for r in b] == big
    # One record larger than the limit still travels, alone.
    huge = [InputRecord(0, None, None, b"z" * (MAX_BATCH_BYTES + 1)), InputRecord(1, None, None, b"z")]
    assert [len(b) for b in split_batches(huge)] == [1, 1]


def waiting_records(count: int, first: int = 0) -> list[InputRecord]:
    return [InputRecord(first + i, 0, b"k", b"v") for i in range(count)]


def test_records_go_at_once_while_few_batches_wait_for_the_lifecycle():
    waiting = waiting_records(5)
    for in_flight in range(MAX_IN_FLIGHT_BATCHES):
        assert due_batches(waiting, in_flight, waited_seconds=0.0) == ([waiting], [])


def test_records_wait_to_join_a_bigger_batch_while_the_lifecycle_is_behind():
    waiting = waiting_records(5)
    assert due_batches(waiting, MAX_IN_FLIGHT_BATCHES, waited_seconds=0.0) == ([], waiting)


def test_full_batches_go_even_while_the_lifecycle_is_behind():
    waiting = waiting_records(MAX_RECORDS_PER_BATCH + 3)
    batches, keep = due_batches(waiting, MAX_IN_FLIGHT_BATCHES, waited_seconds=0.0)
    assert batches == [waiting[:MAX_RECORDS_PER_BATCH]] and keep == waiting[MAX_RECORDS_PER_BATCH:]
    exactly_full = waiting_records(MAX_RECORDS_PER_BATCH)
    assert due_batches(exactly_full, MAX_IN_FLIGHT_BATCHES, waited_seconds=0.0) == ([exactly_full], [])


def test_in_a_backlog_a_part_batch_waits_for_the_records_still_unread():
    waiting = waiting_records(MAX_RECORDS_PER_BATCH // 3)
    assert due_batches(waiting, 0, waited_seconds=0.0, unread=10 * MAX_RECORDS_PER_BATCH) == ([], waiting)
    # Caught up, or too few unread records to fill the batch: it goes at once (live traffic).
    assert due_batches(waiting, 0, waited_seconds=0.0, unread=0) == ([waiting], [])
    assert due_batches(waiting, 0, waited_seconds=0.0, unread=50) == ([waiting], [])
    fill = MAX_RECORDS_PER_BATCH - len(waiting)
    assert due_batches(waiting, 0, waited_seconds=0.0, unread=fill - 1) == ([waiting], [])
    assert due_batches(waiting, 0, waited_seconds=0.0, unread=fill) == ([], waiting)
    # Nothing waits longer than the hold.
    assert due_batches(waiting, 0, waited_seconds=MAX_HOLD_SECONDS, unread=10 * fill) == ([waiting], [])
    # Full batches go at once; the rest waits.
    more = waiting_records(MAX_RECORDS_PER_BATCH + 7)
    assert due_batches(more, 0, waited_seconds=0.0, unread=MAX_RECORDS_PER_BATCH) == (
        [more[:MAX_RECORDS_PER_BATCH]], more[MAX_RECORDS_PER_BATCH:])


def test_nothing_waits_longer_than_the_hold():
    waiting = waiting_records(5)
    assert due_batches(waiting, MAX_IN_FLIGHT_BATCHES + 3, waited_seconds=MAX_HOLD_SECONDS) == ([waiting], [])


def test_nothing_waiting_forwards_nothing():
    assert due_batches([], 0, waited_seconds=5.0) == ([], [])
