"""limit_fetch_wait on a real (unstarted) Faust app: the aiokafka consumer Faust creates waits the configured time."""

import faust

from streams.faust_fetch import limit_fetch_wait


def worker_consumer(app: faust.App):
    thread = app.consumer._thread
    return thread._create_worker_consumer(app.transport)


async def test_faust_alone_waits_1500_ms_per_fetch():
    """Why the module exists (if Faust changes this, the wrapper may no longer be needed)."""
    app = faust.App("fetch-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    assert worker_consumer(app)._fetch_max_wait_ms == 1500


async def test_the_consumer_faust_creates_waits_the_configured_time():
    app = faust.App("fetch-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    limit_fetch_wait(app, 100)
    consumer = worker_consumer(app)
    assert consumer._fetch_max_wait_ms == 100
    assert consumer._group_id == "fetch-test"  # still Faust's consumer, with its other settings
