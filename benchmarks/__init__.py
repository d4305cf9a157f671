"""Benchmarks of the callpulse pipeline: throughput, event-to-metric latency, memory (`make bench`)."""
