"""The committed JSON Schemas of the v1 contract, loaded from the package for tests and tools."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import orjson

SCHEMA_NAMES = ("contact-event.v1", "contact-outcome.v1", "queue-stats.v1", "dead-letter.v1")


@cache
def load_schema(name: str) -> dict:
    """The schema `name` (e.g. "contact-event.v1"); cached and shared, so do not mutate it."""
    stem = name.removesuffix(".json")
    if stem not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    return orjson.loads(files("streams.contract").joinpath("schemas", f"{stem}.json").read_bytes())


@cache
def validator(name: str) -> Any:
    """A jsonschema validator for `name` that also checks "format".

    jsonschema is a test dependency only, so it is imported here rather than at
    module level; the processor itself validates input with events.parse_event.
    """
    import jsonschema

    schema = load_schema(name)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
