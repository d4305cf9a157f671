"""The public v1 contract: input events, derived records and their JSON Schemas."""

from streams.contract.events import Event, InvalidEvent, event_from_dict, parse_event

__all__ = ["Event", "InvalidEvent", "event_from_dict", "parse_event"]
