"""callpulse: live contact-center telemetry from Kafka events to Prometheus metrics."""

__version__ = "0.1.0"
