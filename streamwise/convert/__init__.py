"""Turning models written for whole sequences into streaming ones.

``streamwise.convert`` is also callable: ``sw.convert(model, example)`` is
``streamwise.convert.convert.convert``.
"""

import sys
import types
from typing import Any

from streamwise.convert.convert import convert
from streamwise.convert.frame_stream import FrameStream
from streamwise.convert.graph_stream import GraphStream
from streamwise.convert.report import ConvertReport
from streamwise.convert.trace import ConversionError
from streamwise.convert.window_stream import WindowStream, find_context

__all__ = ["ConversionError", "ConvertReport", "FrameStream", "GraphStream", "WindowStream",
           "convert", "find_context"]


class _CallablePackage(types.ModuleType):
    """Lets ``sw.convert(...)`` call the function while ``streamwise.convert`` stays a package."""

    def __call__(self, *args: Any, **kwargs: Any) -> GraphStream:
        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
