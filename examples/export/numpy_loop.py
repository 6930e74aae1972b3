"""Drive an exported stream with numpy and onnxruntime only: what a C++, Rust or Java app does.

    python examples/export/numpy_loop.py model.onnx input.npy output.npy

Reads the contract from the step file's metadata, runs ``start`` on the first ``prologue``
frames, ``step`` on each next ``chunk`` frames (passing ``new_state.*`` back in as
``state.*``), and ``flush`` at the end; writes the outputs.  No streamwise, no torch.
"""

import json
import sys

import numpy as np
import onnxruntime as ort


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def run(step_path, x):
    step = session(step_path)
    contract = json.loads(step.get_modelmeta().custom_metadata_map["streamwise.contract"])
    folder = step_path.rsplit("/", 1)[0] + "/" if "/" in step_path else ""
    start = session(folder + contract["files"]["start"])
    flush = session(folder + contract["files"]["flush"])
    chunk, prologue = contract["chunk"], contract["prologue"]
    t_in, t_out = contract["time_axis"], contract["out_time_axis"]
    names = [s["name"] for s in contract["state"]]

    def frames(lo, hi):  # x[..., lo:hi, ...] on the time axis
        return np.ascontiguousarray(np.take(x, np.arange(lo, hi), axis=t_in))

    length = x.shape[t_in]
    assert length >= prologue and (length - prologue) % chunk == 0, contract["exact_lengths"]
    y, *state = start.run(None, {"x": frames(0, prologue)})
    ys = [y]
    for lo in range(prologue, length, chunk):
        feed = {"x": frames(lo, lo + chunk)}
        feed.update({f"state.{n}": v for n, v in zip(names, state)})
        y, *state = step.run(None, feed)
        ys.append(y)
    ys.append(flush.run(None, {f"state.{n}": v for n, v in zip(names, state)})[0])
    return np.concatenate(ys, axis=t_out)


if __name__ == "__main__":
    model, inp, out = sys.argv[1:4]
    y = run(model, np.load(inp))
    np.save(out, y)
    print(f"{y.shape[0]} rows, output {list(y.shape)}; torch imported: {'torch' in sys.modules}")
