"""Records for callpulse.dead-letter: a rejected input message, why, and where it came from."""

from __future__ import annotations

import base64

from streams.contract.events import format_ms


def dead_letter_record(
    raw: bytes,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    rejected_at_ms: int,
) -> dict:
    """The dead-letter record (schemas/dead-letter.v1.json) for one rejected message.

    The value is kept byte for byte in raw_base64 so it can be replayed after a
    fix; raw adds a readable copy when the bytes are UTF-8. An undecodable key
    is still shown, with U+FFFD for the bad bytes, since the key only locates
    the contact or agent.
    """
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "reason": reason,
        "detail": detail,
        "source": {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": None if key is None else key.decode("utf-8", errors="replace"),
        },
        "raw": text,
        "raw_base64": base64.b64encode(raw).decode("ascii"),
        "rejected_at": format_ms(rejected_at_ms),
    }
