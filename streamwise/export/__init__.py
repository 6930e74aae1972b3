"""Export a streaming model with its state as explicit tensors (ONNX; see docs/export.md)."""

from streamwise.export.check import ExportMismatchError
from streamwise.export.contract import Contract
from streamwise.export.onnx_file import onnx
from streamwise.export.program import NotExportableError, plan

__all__ = ["Contract", "ExportMismatchError", "NotExportableError", "onnx", "plan"]
