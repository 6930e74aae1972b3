"""DAMO-StreamNet's streaming metric: score each output against the world when it is emitted.

silero-vad (rebuilt in plain torch and converted, weights of the vendor's shipped model) reads
real recordings laid end to end with silent gaps; the truth per 32 ms frame is known by
construction.  Offline, frame j is scored on truth j.  Streamed, it is scored on the truth at the
moment it leaves the model: its chunk's arrival plus the push's measured compute (times 8 to
stand for a slower device; pushes run one at a time).  Bigger chunks and slower compute cost F1
at every speech edge.
"""

from pathlib import Path

from streamwise.bench.streaming_vad import run

r = run(Path("/tmp/streamwise-latency-scoring"), chunks=(512, 4096), scales=(0.0, 8.0),
        max_seconds=6.0, progress=False)
for x in r["runs"]:
    print(f"chunk {x['chunk_ms']:>4.0f} ms, compute x{x['compute_scale']:<2g}: streaming F1 "
          f"{x['streaming_f1']:.3f} (offline {r['offline_f1']:.3f}), median emission delay "
          f"{x['delay_ms_p50']:.0f} ms")
