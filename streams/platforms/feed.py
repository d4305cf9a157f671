"""What every feed of raw platform records shares: a configured converter, and one record converted safely.

The feeds are `callpulse ingest` (files, stdin) and the raw topic agents of
the worker (streams.platforms.agents).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from streams.contract.events import REJECT_INVALID_FIELD, Event, InvalidEvent
from streams.platforms import CONVERTERS, Converter

log = logging.getLogger("callpulse")

MAX_RECORD_BYTES = 512 * 1024
"""Longer records are rejected unconverted (no platform record comes near; Kafka's default message limit is 1 MiB)."""


class ConverterOptionsError(ValueError):
    """Options a converter does not take, or values of the wrong shape; the message names them."""


def new_converter(platform: str, options: Mapping[str, object] | None = None) -> Converter:
    """A `platform` converter with keyword `options` (docs/platforms.md lists them per platform).

    >>> new_converter("asterisk", {"callback_keys": ["5"]}).callback_keys
    frozenset({'5'})
    """
    if platform not in CONVERTERS:
        raise ConverterOptionsError(f"unknown platform {platform!r}; known: {', '.join(sorted(CONVERTERS))}")
    try:
        return CONVERTERS[platform](**dict(options or {}))
    except (TypeError, ValueError, AttributeError) as problem:
        raise ConverterOptionsError(f"invalid {platform} converter options {dict(options or {})!r}: {problem}") \
            from None


def merge_options(base: Mapping[str, object] | None, overrides: Mapping[str, object]) -> dict:
    """`base` with `overrides` on top; mappings merge key by key, lists add up (command line over settings)."""
    merged = dict(base or {})
    for name, value in overrides.items():
        previous = merged.get(name)
        if isinstance(value, Mapping) and isinstance(previous, Mapping):
            merged[name] = {**previous, **value}
        elif isinstance(value, list | tuple) and isinstance(previous, list | tuple):
            merged[name] = [*previous, *value]
        else:
            merged[name] = value
    return merged


def convert_raw(converter: Converter, raw: bytes) -> list[Event]:
    """`converter.convert(raw)`, where anything that goes wrong is an InvalidEvent for the dead letter.

    A converter failing on a record it should have rejected is a bug, but a
    live feed must not stop for one record: it is logged with its traceback
    and the record is kept in the dead letter like any other reject.
    """
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidEvent(REJECT_INVALID_FIELD, f"a record of {len(raw)} bytes, more than {MAX_RECORD_BYTES}"
                                                 " (the dead letter keeps the first ones)")
    try:
        return converter.convert(raw)
    except InvalidEvent:
        raise
    except Exception as problem:
        log.exception("the %s converter failed on a record", converter.platform)
        raise InvalidEvent(REJECT_INVALID_FIELD, f"the {converter.platform} converter failed: "
                                                 f"{type(problem).__name__}: {problem}") from None
