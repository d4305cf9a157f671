"""The worker's logging: Faust's terminal spinner must not turn every debug call into a log record."""

from __future__ import annotations

import logging

import faust

from streams.cli import service_worker


def probe_logger() -> logging.Logger:
    logger = logging.Logger("probe", logging.WARNING)
    logger.addHandler(logging.NullHandler())
    return logger


def test_at_warn_the_worker_leaves_the_root_level_alone():
    worker = service_worker(faust.App("probe-logging"), "warn")
    logger = probe_logger()
    worker.on_setup_root_logger(logger, logging.WARNING)  # what Faust calls after configuring the root logger
    assert logger.level == logging.WARNING
    assert len(logger.handlers) == 1
    assert not logger.isEnabledFor(logging.DEBUG)


def test_faust_alone_would_set_the_root_logger_to_debug_at_warn():
    """Why service_worker drops the spinner (fails once Faust stops doing this)."""
    from faust.worker import Worker

    worker = Worker(faust.App("probe-logging-faust"), loglevel="warn", quiet=True)
    logger = probe_logger()
    worker.on_setup_root_logger(logger, logging.WARNING)
    assert logger.level == logging.DEBUG
