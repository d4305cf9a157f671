"""Platform adapters: pure converters from Asterisk, Amazon Connect and Twilio events to v1 events.

Each converter takes one native record and returns the v1 `Event`s it means
(often one, sometimes none, sometimes several), with event ids derived from
the record so that replaying a source yields the same ids and callpulse drops
the repeats. Unconvertible input raises `InvalidEvent` with a contract reject
reason; where the line or offset is, is the caller's business. The mapping
tables and the decisions behind them are in docs/platforms.md.

>>> converter = CONVERTERS["asterisk"]()
>>> [e.type for e in converter.convert("1795334400|1795334400.17|support|NONE|ABANDON|1|1|42")]
['contact.abandoned']
"""

from __future__ import annotations

from typing import Protocol

from streams.contract.events import Event
from streams.platforms.asterisk import AsteriskConverter
from streams.platforms.connect import ConnectConverter
from streams.platforms.twilio import TwilioConverter


class Converter(Protocol):
    """What every platform converter offers; instances may hold small bounded state."""

    platform: str

    def convert(self, record: bytes | str | dict) -> list[Event]:
        """v1 events for one native record; [] when it carries nothing for callpulse."""
        ...


CONVERTERS: dict[str, type[Converter]] = {
    AsteriskConverter.platform: AsteriskConverter,
    ConnectConverter.platform: ConnectConverter,
    TwilioConverter.platform: TwilioConverter,
}

__all__ = ["CONVERTERS", "AsteriskConverter", "ConnectConverter", "Converter", "TwilioConverter"]
