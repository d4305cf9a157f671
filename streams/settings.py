"""Process settings from the environment: broker, web port, state directory, Kafka security.

Secrets (SASL password) are kept as SecretStr so they never reach logs or reprs.
"""

from __future__ import annotations

import ssl
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """CALLPULSE_* environment variables (see README: configuration)."""

    model_config = SettingsConfigDict(env_prefix="CALLPULSE_", extra="ignore", frozen=True)

    broker: str = "kafka://127.0.0.1:9092"
    web_port: int = Field(6066, ge=1, le=65535)
    web_host: str = "0.0.0.0"
    # Host name other workers use to reach this one's web server (GET /queues/{queue} routing).
    advertised_host: str = "127.0.0.1"
    config: Path | None = None
    data_dir: Path = Path("data")
    app_id: str = "callpulse"
    input_topic: str = "callpulse.contact-events"
    partitions: int = Field(8, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    standby_replicas: int = Field(1, ge=0)
    # Seconds an idle input partition waits before its newest event time counts as final.
    idle_finalize_seconds: float = Field(30.0, gt=0)
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    # Producer record batch size (bytes). Faust's default, 16 KB, made a 300,000-event backlog
    # run at half the speed: every contact write is a changelog message (README: performance).
    # 1,000,000 stays under Apache Kafka's default message.max.bytes (1,048,588).
    producer_max_batch_bytes: int = Field(1_000_000, ge=1)
    # Longest wait of a fetch for new records (ms), for the forwarder and Faust's consumer
    # (Faust fixes 1,500). Some brokers hold every fetch that long (streams.faust_fetch).
    fetch_max_wait_ms: int = Field(100, ge=1, le=60_000)
    # Raw platform topics are <prefix>.asterisk, .connect and .twilio; empty turns their agents off.
    raw_topic_prefix: str = "callpulse.raw"
    # Converter options per platform (JSON), for the raw topic agents and `callpulse ingest`,
    # e.g. {"connect": {"queue_names": {"<queue id>": "support"}}} (docs/platforms.md).
    platform_options: dict[str, dict] = Field(default_factory=dict)

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    @field_validator("platform_options")
    @classmethod
    def _converters_take_the_options(cls, value: dict[str, dict]) -> dict[str, dict]:
        """Fail at start-up, naming the option, rather than when the first record arrives."""
        from streams.platforms.feed import new_converter

        for platform, options in value.items():
            new_converter(platform, options)
        return value

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL(s) without the kafka:// scheme, as aiokafka wants them."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(
            cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None)
        if self.kafka_ssl_certfile:
            context.load_cert_chain(str(self.kafka_ssl_certfile),
                                    str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None)
        return context

    def aiokafka_security(self) -> dict:
        """Extra keyword arguments for aiokafka producers and consumers."""
        options: dict = {"security_protocol": self.kafka_security_protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None)
        return options

    def faust_credentials(self):
        """Faust's broker_credentials for the configured security, or None for PLAINTEXT."""
        import faust

        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return None
        if protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context)
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        return faust.SASLCredentials(username=self.kafka_sasl_username, password=password,
                                     mechanism=self.kafka_sasl_mechanism, ssl_context=self.ssl_context)
