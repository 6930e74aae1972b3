"""CarelessWhisper's setting: a causal chunked encoder and streaming decoding that commits
stable words, on the shipped recogniser and clip.

The clip (a held-out espeak-ng voice saying eight words) is pushed in 40 ms pieces at 160 ms
chunk latency, as fast as it computes; the transcript must equal the offline decode.  The live
terminal version is ``streamwise demo asr``.
"""

import io

from streamwise.speech.demo import run_asr_demo

r = run_asr_demo(latency_ms=160, fast=True, stream=io.StringIO())  # no live line here
print(f"spoken:     {r['spoken']}\ntranscript: {r['transcript']} (WER {r['wer']:.0%}, equals "
      f"the offline decode: {r['equals_offline']}); real-time factor {r['rtf']:.2f}")
