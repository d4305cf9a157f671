"""Bad input through the real broker: dead-lettered with the reason, counted, and good events around it processed."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.harness import sample, wait_for

pytestmark = pytest.mark.integration


def _event(**fields) -> bytes:
    return orjson.dumps(fields)


def test_bad_inputs_go_to_dead_letter_and_good_events_around_them_count(stack):
    worker = stack.worker().start()
    now_ms = int(time.time() * 1000) - 60_000
    good_before = _event(event_id="g1", type="contact.queued", occurred_at=now_ms, contact_id="c1",
                         queue="support", channel="voice")
    good_after = _event(event_id="g2", type="contact.answered", occurred_at=now_ms + 8000, contact_id="c1",
                        agent_id="a1")
    bad = [
        (b"not json at all", "not_json"),
        (b"\xff\xfe\x00garbage", "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (_event(event_id="b1", type="contact.teleported", occurred_at=now_ms, contact_id="c9"), "unknown_type"),
        (_event(event_id="b2", type="contact.queued", occurred_at=now_ms, contact_id="c9", channel="voice"),
         "missing_field"),
        (_event(type="contact.answered", occurred_at=now_ms, contact_id="c9", agent_id="a1"), "missing_field"),
        (_event(event_id="b3", type="contact.queued", occurred_at="2026-13-45T99:00:00Z", contact_id="c9",
                queue="support", channel="voice"), "invalid_timestamp"),
        (_event(event_id="b4", type="contact.queued", occurred_at="yesterday", contact_id="c9",
                queue="support", channel="voice"), "invalid_timestamp"),
        (_event(event_id="b5", type="contact.queued", occurred_at=now_ms, contact_id="c9",
                queue="support", channel="fax"), "invalid_field"),
    ]
    messages = [(b"c1", good_before)] + [(b"c9", raw) for raw, _ in bad] + [(b"c1", good_after)]
    stack.produce(messages)

    dead = stack.consume("callpulse.dead-letter", len(bad), timeout=60,
                         accept=lambda m: orjson.loads(m.value)["source"]["topic"] == stack.input_topic)
    records = sorted((orjson.loads(m.value) for m in dead), key=lambda r: r["source"]["offset"])
    assert [r["reason"] for r in records] == [reason for _, reason in bad]
    for record, (raw, _) in zip(records, bad):
        assert record["detail"]
        assert record["source"]["key"] == "c9"
        import base64
        assert base64.b64decode(record["raw_base64"]) == raw

    def counted():
        metrics = worker.metrics()
        answered = sample(metrics, "callpulse_contacts_answered_total", queue="support", channel="voice")
        return answered == 1 and metrics
    metrics = wait_for(counted, 180, message="good events processed and final")
    expected = {}
    for _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    for reason, count in expected.items():
        assert sample(metrics, "callpulse_events_rejected_total", reason=reason) == count
    assert sample(metrics, "callpulse_events_total", type="contact.queued") == 1
    assert sample(metrics, "callpulse_events_total", type="contact.answered") == 1
    # Every input message is accounted for: processed, duplicate or dead-lettered.
    processed = sum(v for (name, _), v in metrics.items() if name == "callpulse_events_total")
    rejected = sum(v for (name, _), v in metrics.items() if name == "callpulse_events_rejected_total")
    assert processed + rejected + sample(metrics, "callpulse_events_duplicate_total") == len(messages)
