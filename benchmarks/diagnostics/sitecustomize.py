"""Stage timing for the latency step: where a marker's time goes, from produce() to the queue table.

A diagnostic, not part of the product or of `make bench`. Python imports a
`sitecustomize` module found on PYTHONPATH at start-up, and the bench passes
its environment to the worker, so

    BENCH_STAGES_OUT=/tmp/stages.json PYTHONPATH=benchmarks/diagnostics \\
        python -m benchmarks --only latency
    python -m benchmarks.diagnostics.stages /tmp/stages.json

wraps a few functions of the worker (Faust's and aiokafka's private ones among
them) with timers, and writes every sample to the file every few seconds. Each
stage of a marker is in milliseconds since its event time (the moment the
bench produced it):

- forwarder_has: the forwarder fetched it;
- forwarded: its input batch was handed to the producer;
- lifecycle_start / lifecycle_done: the lifecycle agent began / finished its batch;
- queue_applied: the queue agent applied its queue entry (about what /metrics shows).

And for every message (not only markers), milliseconds since the producer made it:
batch_arrived / facts_arrived (Faust's consumer handed it to the main loop),
batch_picked / facts_picked (the agent took it); and the wall time of the
lifecycle agent's steps (on_batch, on_tick). The wrappers cost the worker a
little CPU; compare runs made with them, not with runs made without.
"""

from __future__ import annotations

import os
import time

OUTPUT = os.environ.get("BENCH_STAGES_OUT")
MARKER = b"bench-latency"  # benchmarks.workload.MARKER_QUEUE (not importable at start-up; a test pins it)
DUMP_EVERY_SECONDS = 5.0


def _install(output: str) -> None:
    import orjson
    from faust.transport import conductor

    import streams.queues.state as queue_state
    from streams import faust_offsets, input_batches, pipeline
    from streams.lifecycle import facts

    samples: dict[str, list[float]] = {name: [] for name in (
        "forwarder_has", "forwarded", "lifecycle_start", "lifecycle_done", "queue_applied",
        "batch_arrived", "batch_picked", "facts_arrived", "facts_picked", "on_batch", "on_tick")}
    last_dump = [time.monotonic()]

    def now_ms() -> float:
        return time.time() * 1000

    def dump() -> None:
        if time.monotonic() - last_dump[0] >= DUMP_EVERY_SECONDS:
            last_dump[0] = time.monotonic()
            with open(output, "wb") as file:
                file.write(orjson.dumps(samples))

    hold = input_batches.InputForwarder._hold

    def timed_hold(self, partition, messages):
        at = now_ms()
        for message in messages:
            if message.value and MARKER in message.value:
                samples["forwarder_has"].append(at - orjson.loads(message.value)["occurred_at"])
        return hold(self, partition, messages)

    on_batch = pipeline.Pipeline._on_batch

    async def timed_on_batch(self, message, clock):
        start = now_ms()
        markers = []
        try:
            batch = input_batches.decode_batch(message.value)
        except ValueError:
            batch = None
        for record in batch.records if batch else ():
            if record.value and MARKER in record.value:
                occurred = orjson.loads(record.value)["occurred_at"]
                markers.append(occurred)
                samples["forwarded"].append(batch.forwarded_at_ms - occurred)
                samples["lifecycle_start"].append(start - occurred)
        result = await on_batch(self, message, clock)
        end = now_ms()
        samples["on_batch"].append(end - start)
        samples["lifecycle_done"].extend(end - occurred for occurred in markers)
        dump()
        return result

    on_tick = pipeline.Pipeline._on_tick

    async def timed_on_tick(self, *args):
        start = now_ms()
        result = await on_tick(self, *args)
        samples["on_tick"].append(now_ms() - start)
        return result

    apply_fact = queue_state.apply_fact

    def timed_apply_fact(state, item, *args, **kwargs):
        if item.get("k") == facts.ENQUEUED and item.get("q") == MARKER.decode():
            samples["queue_applied"].append(now_ms() - item["t"])
            dump()
        return apply_fact(state, item, *args, **kwargs)

    def stage_of(topic: str, suffix: str) -> str | None:
        if topic.endswith("-input-batches"):
            return f"batch_{suffix}"
        if topic.endswith("-queue-facts"):
            return f"facts_{suffix}"
        return None

    compile_handler = conductor.Conductor._compile_message_handler

    def timed_compile_handler(self):
        handler = compile_handler(self)

        async def on_message(message):
            stage = stage_of(message.topic, "arrived")
            if stage:
                samples[stage].append((time.time() - message.timestamp) * 1000)
            return await handler(message)
        return on_message

    in_order = faust_offsets.OffsetGuard.in_order

    def timed_in_order(self, message):
        stage = stage_of(message.topic, "picked")
        if stage:
            samples[stage].append((time.time() - message.timestamp) * 1000)
        return in_order(self, message)

    input_batches.InputForwarder._hold = timed_hold
    pipeline.Pipeline._on_batch = timed_on_batch
    pipeline.Pipeline._on_tick = timed_on_tick
    queue_state.apply_fact = timed_apply_fact
    conductor.Conductor._compile_message_handler = timed_compile_handler
    faust_offsets.OffsetGuard.in_order = timed_in_order


if OUTPUT:
    _install(OUTPUT)
