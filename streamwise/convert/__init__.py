"""Turning models written for whole sequences into streaming ones."""

from streamwise.convert.window_stream import WindowStream, find_context

__all__ = ["WindowStream", "find_context"]
