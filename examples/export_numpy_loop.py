"""Export a small non-causal conv stack to ONNX, then stream it from a process that has only
numpy and onnxruntime (``examples/export/numpy_loop.py``), and compare with torch offline."""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import streamwise as sw
from streamwise.export import onnx

torch.manual_seed(0)
model = sw.Sequential(
    sw.Conv1d(1, 8, 5, padding="same"), torch.nn.ELU(),
    sw.Conv1d(8, 8, 4, stride=2), torch.nn.ELU(),
    sw.ConvTranspose1d(8, 1, 4, stride=2),
).eval()

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "model.onnx"
    contract = onnx(model, path, chunk=8, example=torch.zeros(1, 1, 64))
    print(contract.summary())
    length = contract.prologue + 25 * contract.chunk
    x = torch.randn(2, 1, length)
    np.save(Path(tmp) / "x.npy", x.numpy())
    loop = Path(__file__).parent / "export" / "numpy_loop.py"
    out = subprocess.run([sys.executable, str(loop), str(path), str(Path(tmp) / "x.npy"),
                          str(Path(tmp) / "y.npy")], capture_output=True, text=True, check=True)
    print("numpy loop:", out.stdout.strip())
    assert "torch imported: False" in out.stdout
    y = np.load(Path(tmp) / "y.npy")
    with torch.inference_mode():
        ref = model(x).numpy()
    err = float(np.abs(y - ref).max())
    print(f"{length} samples, 2 streams: max abs error vs torch offline {err:.2e} "
          f"(output scale {np.abs(ref).max():.2f})")
    assert y.shape == ref.shape and err <= 1e-5 * max(1.0, float(np.abs(ref).max()))
