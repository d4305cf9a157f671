"""HTTP API on the Faust web server: /metrics, /healthz, /readyz, /queues, /queues/{queue}.

Read-only (GET only). Any worker answers /queues and /queues/{queue}: it serves
the queues it owns and asks the owners of the others through their
/internal/queues endpoint (their URLs come from Faust's partition assignor).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.contract.events import CHANNELS
from streams.lifecycle.facts import queue_key, split_queue_key
from streams.queues.windows import snapshot

log = logging.getLogger("callpulse.web")
PEER_TIMEOUT_SECONDS = 3.0


def register_views(pipeline) -> None:
    """Attach the callpulse pages to the pipeline's Faust app."""
    app = pipeline.app

    def local_snapshots(queue: str | None = None) -> list[dict]:
        now = pipeline.wall_clock_ms()
        config = pipeline.config
        records = []
        for key, state in pipeline.owned_queue_states():
            name, channel = split_queue_key(key)
            if queue is None or name == queue:
                records.append(snapshot(name, channel, state, now, config.zone, config.targets_for(name),
                                        pipeline.limits.expiry_ms))
        return records

    def own_url() -> str:
        return str(app.conf.canonical_url).rstrip("/")

    async def fetch_peer(session: aiohttp.ClientSession, base_url: str, queue: str | None) -> list[dict]:
        params = {"queue": queue} if queue is not None else {}
        try:
            async with session.get(f"{base_url.rstrip('/')}/internal/queues", params=params) as response:
                response.raise_for_status()
                return orjson.loads(await response.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as problem:
            log.warning("could not fetch queues from %s: %s", base_url, problem)
            raise

    async def gather(peers: set[str], queue: str | None) -> tuple[list[dict], list[str]]:
        records = local_snapshots(queue)
        unreachable: list[str] = []
        peers = {p.rstrip("/") for p in peers} - {own_url()}
        if peers:
            timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_SECONDS)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                ordered = sorted(peers)
                results = await asyncio.gather(*(fetch_peer(session, p, queue) for p in ordered),
                                               return_exceptions=True)
            for peer, result in zip(ordered, results):
                if isinstance(result, BaseException):
                    unreachable.append(peer)
                else:
                    records.extend(result)
        records.sort(key=lambda r: (r["queue"], r["channel"]))
        return records, unreachable

    def all_peers() -> set[str]:
        return {str(url) for url in app.router.tables_metadata()}

    @app.page("/metrics")
    async def metrics(self, request):
        return self.bytes(generate_latest(pipeline.registry),
                          headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(self, request):
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self, request):
        ready = pipeline.ready and not app.rebalancing
        return self.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/internal/queues")
    async def internal_queues(self, request):
        return self.bytes(orjson.dumps(local_snapshots(request.query.get("queue"))),
                          content_type="application/json")

    @app.page("/queues")
    async def queues(self, request):
        if not pipeline.ready:
            return self.json({"error": "not ready: recovery in progress"}, status=503)
        records, unreachable = await gather(all_peers(), None)
        body = {"queues": records}
        if unreachable:
            body["unreachable_workers"] = unreachable
        return self.bytes(orjson.dumps(body), content_type="application/json")

    @app.page("/queues/{queue}")
    async def one_queue(self, request, queue):
        if not pipeline.ready:
            return self.json({"error": "not ready: recovery in progress"}, status=503)
        owners = {owner for channel in CHANNELS if (owner := pipeline.queue_owner_url(queue_key(queue, channel)))}
        records, unreachable = await gather(owners, queue)
        if not records:
            if unreachable:
                return self.json({"error": f"owner of queue {queue!r} unreachable",
                                  "unreachable_workers": unreachable}, status=502)
            return self.json({"error": f"unknown queue {queue!r}"}, status=404)
        return self.bytes(orjson.dumps({"queue": queue, "channels": records}),
                          content_type="application/json")
