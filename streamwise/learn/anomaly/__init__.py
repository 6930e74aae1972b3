"""Streaming anomaly detectors with one River-style verb set: learn_one, score_one."""
