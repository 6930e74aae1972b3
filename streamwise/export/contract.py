"""The contract of an exported stream: what a runtime in any language needs to drive the files.

It is stored as JSON under the metadata key ``streamwise.contract`` of every exported file, and
is what ``streamwise export`` prints.  Fields (frames are input frames unless said otherwise):

- ``chunk``: frames of ``x`` per ``step`` call; ``prologue``: frames of ``x`` of the one
  ``start`` call that opens a stream (a multiple of ``chunk``);
- ``out_start``, ``out_step``, ``out_flush``: output frames each program gives;
- ``delay``, ``stride``, ``period``, ``receptive_field``: the model's static facts;
- ``time_axis``, ``out_time_axis``, ``input_frame``, ``output_frame``: where time is, and one
  input and output frame's shape besides batch and time;
- ``state``: each state tensor's name, shape for one row (batch axis at 1), dtype, batch axis;
- ``files``: the three files, by program; ``startup``/``end``: the rules below, in words;
- ``exact_lengths``: which stream lengths reproduce the offline forward;
- ``streamwise``, ``fingerprint``: the version that wrote the file and the model's fingerprint.

Start-up: call ``start`` once with the first ``prologue`` frames; its ``y`` is the stream's first
``out_start`` output frames (nothing is dropped: start-up is the eager code itself).  Then call
``step`` with each next ``chunk`` frames, passing the previous call's ``new_state.*`` as
``state.*``.  End: call ``flush`` with the last state; its ``y`` is the last ``out_flush`` frames.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streamwise.core.stream import model_fingerprint
from streamwise.export.program import Program
from streamwise.runtime.contract_file import KEY, sibling

KINDS = ("start", "step", "flush")


@dataclass
class Contract:
    chunk: int
    prologue: int
    out_start: int
    out_step: int
    out_flush: int
    delay: str
    stride: str
    period: int
    receptive_field: int
    time_axis: int
    out_time_axis: int
    input_frame: list[int]
    output_frame: list[int]
    dtype: str
    state: list[dict[str, Any]]
    files: dict[str, str]
    fingerprint: str
    streamwise: str
    exact_lengths: str = ""
    startup: str = ""
    end: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Contract:
        return cls(**json.loads(text))

    def write_into(self, model_proto: Any, kind: str) -> None:
        """Put the contract in an ONNX model's metadata (and the program's name)."""
        for key, value in ((KEY, self.to_json()), ("streamwise.program", kind)):
            prop = model_proto.metadata_props.add()
            prop.key, prop.value = key, value
        model_proto.producer_name = "streamwise"

    def summary(self) -> str:
        """The I/O contract in a few lines (what ``streamwise export`` prints)."""
        lines = [f"chunk {self.chunk} frames; start takes the first {self.prologue} "
                 f"(gives {self.out_start}), step gives {self.out_step}, flush gives "
                 f"{self.out_flush}",
                 f"delay {self.delay}, stride {self.stride}, period {self.period}; dtype "
                 f"{self.dtype}; exact for {self.exact_lengths}",
                 f"inputs  x {self.x_shape('chunk')}, then the state:"]
        for s in self.state:
            lines.append(f"  state.{s['name']}  {s['shape']} {s['dtype']}"
                         f"{'' if s['batch_axis'] is not None else ' (shared by rows)'}")
        lines.append(f"outputs y, new_state.* (same names); files: "
                     f"{', '.join(f'{k}={v}' for k, v in self.files.items())}")
        return "\n".join(lines)

    def x_shape(self, frames: str | int) -> list[Any]:
        shape: list[Any] = ["B", *self.input_frame]
        shape.insert(self.time_axis % (len(shape) + 1), frames)
        return shape


def contract_of(program: Program, path: str | Path | None = None) -> Contract:
    import streamwise

    m = program.model
    files = {k: sibling(path or "model.onnx", k).name for k in KINDS}
    exact = (f"streams of at least {program.prologue} frames"
             + ("" if m.delay == 0 else f" whose length is a multiple of {program.chunk}"))
    return Contract(
        chunk=program.chunk, prologue=program.prologue,
        out_start=program.out_start, out_step=program.out_step, out_flush=program.out_flush,
        delay=str(m.delay), stride=str(m.stride), period=m.period,
        receptive_field=m.receptive_field, time_axis=program.time_axis,
        out_time_axis=program.out_time_axis, input_frame=list(program.in_shape),
        output_frame=list(program.out_shape),
        dtype=str(program.dtype).replace("torch.", ""),
        state=[{"name": leaf.name, "shape": list(leaf.shape),
                "dtype": str(leaf.dtype).replace("torch.", ""), "batch_axis": leaf.batch_axis}
               for leaf in program.leaves],
        files=files, fingerprint=model_fingerprint(m),
        streamwise=getattr(streamwise, "__version__", "0.1.0"), exact_lengths=exact,
        startup=f"call start once with the first {program.prologue} frames; its y is the "
                f"stream's first {program.out_start} outputs; then step with each {program.chunk}",
        end=f"call flush with the last state: its y is the last {program.out_flush} outputs; a "
            "model without lookahead may end on a partial chunk padded with zeros, keeping the "
            "outputs of its real frames",
    )
