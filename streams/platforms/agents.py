"""Raw platform topics converted in the stream: one Faust agent per platform, feeding the input topic.

A platform's own Kafka connector (a queue_log shipper, Connect's EventBridge or
Kinesis sink, Twilio's Event Streams Kafka sink) writes native records to
`<prefix>.asterisk`, `<prefix>.connect` or `<prefix>.twilio`
(`CALLPULSE_RAW_TOPIC_PREFIX`, default `callpulse.raw`). The agent converts each
record and sends the v1 events to the input topic keyed like any producer's, so
the lifecycle agent takes them from there; a record that cannot be converted
goes to the dead letter with its reason.

Converters remember a little (an agent's pauses, queue names, the last agent
snapshot), in memory, bounded, per worker: records that depend on each other
should share a raw-topic key (e.g. one key per log file or per Connect
instance), so that one partition and one worker sees them in order.
"""

from __future__ import annotations

from streams import json_bytes
from streams.contract.dead_letter import dead_letter_record
from streams.contract.events import InvalidEvent
from streams.platforms import CONVERTERS, Converter
from streams.platforms.feed import MAX_RECORD_BYTES, convert_raw, new_converter


def raw_topic_name(prefix: str, platform: str) -> str:
    return f"{prefix}.{platform}"


def register_raw_agents(pipeline) -> None:
    """Add one agent per platform to `pipeline.app`; none when the raw topic prefix is empty."""
    settings = pipeline.settings
    if not settings.raw_topic_prefix:
        return
    app = pipeline.app
    for platform in CONVERTERS:
        # internal=True: the worker creates the topic when missing, like its own topics.
        topic = app.topic(raw_topic_name(settings.raw_topic_prefix, platform), key_serializer="raw",
                          value_serializer="raw", partitions=settings.partitions, internal=True)
        converter = new_converter(platform, settings.platform_options.get(platform))
        app.agent(topic, name=f"raw-{platform}")(_raw_agent(pipeline, converter))


def _raw_agent(pipeline, converter: Converter):
    async def convert_records(stream) -> None:
        async for event in stream.events():
            message = event.message
            if message.value is None:
                continue  # a tombstone: nothing was recorded
            try:
                converted = convert_raw(converter, message.value)
            except InvalidEvent as problem:
                await _dead_letter(pipeline, message, problem)
                continue
            for item in converted:
                await pipeline.produce(pipeline.settings.input_topic, item.partition_key.encode(),
                                       json_bytes.dumps(item.to_json()))

    return convert_records


async def _dead_letter(pipeline, message, problem: InvalidEvent) -> None:
    record = dead_letter_record(
        raw=message.value[:MAX_RECORD_BYTES], reason=problem.reason, detail=problem.detail, topic=message.topic,
        partition=message.partition, offset=message.offset, key=message.key,
        rejected_at_ms=pipeline.wall_clock_ms())
    await pipeline.produce(pipeline.dead_letter_topic.get_topic_name(), message.key, json_bytes.dumps(record))
    pipeline.health.rejected(problem.reason)
