"""Turning models written for whole sequences into streaming ones.

``from streamwise.convert import convert`` (or ``sw.convert``, the same function re-exported at
the top level) converts a model; ``streamwise.convert.saved`` saves and loads converted models.
"""

from streamwise.convert.convert import convert
from streamwise.convert.frame_stream import FrameStream
from streamwise.convert.graph_stream import GraphStream
from streamwise.convert.report import ConvertReport
from streamwise.convert.scale_align import ScaleAlign
from streamwise.convert.trace import ConversionError
from streamwise.convert.window_stream import WindowStream, find_context

__all__ = ["ConversionError", "ConvertReport", "FrameStream", "GraphStream", "ScaleAlign",
           "WindowStream", "convert", "find_context"]
