"""OffsetGuard on a real (unstarted) Faust consumer: nothing is committed past an unprocessed message."""

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.faust_offsets import OffsetGuard

TOPIC = "batches"
TP1 = TP(TOPIC, 1)


@pytest.fixture
def app():
    app = faust.App("offsets-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    app.topics._acking_topics.add(TOPIC)
    app.flow_control.resume()
    app.consumer_generation_id = 7
    return app


@pytest.fixture
def guard(app):
    guard = OffsetGuard(app, is_stream_topic=lambda topic: topic == TOPIC,
                        is_gapless_topic=lambda topic: topic == TOPIC)
    guard.install()
    return guard


def message(offset: int, generation_id: int | None = 7) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, 1, offset, 0.0, 0, None, None, b"x", None, tp=TP1, generation_id=generation_id)


def acked(app, *offsets: int) -> None:
    for offset in offsets:
        assert app.consumer.ack(message(offset)), offset


def test_faust_alone_commits_over_a_single_unprocessed_message_at_the_head(app):
    """Why the guard exists: committed 1 (next to read) and only 2 acknowledged gives 3."""
    app.consumer._committed_offset[TP1] = 1
    acked(app, 2)
    assert app.consumer._new_offset(TP1) == 3


def test_a_commit_waits_for_the_message_at_the_committed_offset(app, guard):
    app.consumer._committed_offset[TP1] = 1
    acked(app, 2, 3)
    assert app.consumer._new_offset(TP1) is None
    assert guard.held_commits == 1
    acked(app, 1)
    assert app.consumer._new_offset(TP1) == 4


def test_without_a_committed_offset_the_seek_position_is_the_head(app, guard):
    guard.heads[TP1] = 5
    acked(app, 6)
    assert app.consumer._new_offset(TP1) is None
    acked(app, 5)
    assert app.consumer._new_offset(TP1) == 7


def test_offsets_the_fetch_skipped_count_as_processed_on_topics_with_holes(app):
    OffsetGuard(app, is_stream_topic=lambda topic: True, is_gapless_topic=lambda topic: False).install()
    app.consumer._committed_offset[TP1] = 1
    app.consumer._gap[TP1].addi(1, 3)  # offsets 1 and 2 do not exist (e.g. compacted away)
    acked(app, 3)
    assert app.consumer._new_offset(TP1) == 4


def test_on_a_gapless_topic_a_jump_in_the_fetch_is_not_processed(app, guard):
    app.consumer._committed_offset[TP1] = 1
    acked(app, 1)
    app.consumer._gap[TP1].addi(2, 3)  # offset 2 was dropped between the fetch and the agent
    acked(app, 3)
    assert app.consumer._new_offset(TP1) == 2
    assert app.consumer._new_offset(TP1) is None


@pytest.mark.parametrize("generation_id, flow_active", [(6, True), (7, False)],
                         ids=["fetched in an older generation", "taken while the flow is suspended"])
def test_a_skipped_message_is_marked_acked_but_never_committed(app, guard, generation_id, flow_active):
    if not flow_active:
        app.flow_control.suspend()
    skipped = message(0, generation_id=generation_id)
    assert app.consumer.ack(skipped) is False
    assert skipped.acked  # Faust's wait_empty stops waiting for it
    assert not app.consumer._acked[TP1]
    assert app.consumer._new_offset(TP1) is None
    assert guard.refused_acks == 1


def test_a_message_processed_in_the_current_generation_is_committed(app, guard):
    acked(app, 0, 1)
    assert app.consumer._new_offset(TP1) == 2
    assert guard.refused_acks == 0


def test_in_order_refuses_a_message_after_missing_ones_and_accepts_reads_again(guard):
    guard.next_offsets[TP1] = 3
    assert guard.in_order(message(3))
    assert not guard.in_order(message(5))  # 4 never arrived
    assert guard.in_order(message(2))  # read again (a replay): harmless
    assert guard.in_order(message(4))
    assert guard.in_order(message(5))
    assert guard.next_offsets[TP1] == 6


def test_in_order_accepts_anything_first_on_a_partition_it_has_not_seen(guard):
    assert guard.in_order(message(40))
    assert not guard.in_order(message(42))


def test_a_message_the_agent_skipped_is_not_committed_until_it_is_processed(app, guard):
    app.consumer._committed_offset[TP1] = 3
    guard.next_offsets[TP1] = 3
    skipped = message(4)
    assert not guard.in_order(skipped)
    assert app.consumer.ack(skipped) is False  # the stream acknowledges what the agent skipped
    assert guard.in_order(message(3))
    acked(app, 3)
    assert app.consumer._new_offset(TP1) == 4  # not 5: offset 4 has not been processed
    app.consumer._committed_offset[TP1] = 4  # as the commit of 4 would
    again = message(4)
    assert guard.in_order(again)
    acked(app, 4)
    assert app.consumer._new_offset(TP1) == 5


def test_a_deferred_topic_commits_only_what_its_agent_made_durable(app, guard):
    """The queue agent acknowledges each facts message at once and writes its queue states later."""
    guard.defer_commits(TOPIC)
    app.consumer._committed_offset[TP1] = 1
    acked(app, 1, 2, 3, 4)
    assert app.consumer._new_offset(TP1) is None  # nothing durable yet
    guard.durable({TP1: 2})
    assert app.consumer._new_offset(TP1) == 3
    app.consumer._committed_offset[TP1] = 3
    assert app.consumer._new_offset(TP1) is None  # 3 and 4 kept for later, not dropped
    guard.durable({TP1: 1})  # an older declaration never moves the mark back
    guard.durable({TP1: 4})
    assert app.consumer._new_offset(TP1) == 5


def test_a_rebalance_forgets_what_was_durable(app, guard):
    guard.defer_commits(TOPIC)
    guard.durable({TP1: 9})
    guard.forget_durable()
    app.consumer._committed_offset[TP1] = 1
    acked(app, 1)
    assert app.consumer._new_offset(TP1) is None
