"""The Numenta Anomaly Benchmark (NAB v1.1), reimplemented from its documented scoring rules."""
