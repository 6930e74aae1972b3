"""Where the shared data lives: ``../shared/data`` beside the repository.

One home for the path, read by the NAB series loader, the stream-x prediction task and the
LLM benchmark's text.  ``$STREAMWISE_SHARED`` overrides the folder (``$STREAMWISE_SHARED/data``).
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data() -> Path:
    """``../shared/data`` beside the repository (or ``$STREAMWISE_SHARED/data``)."""
    env = os.environ.get("STREAMWISE_SHARED")
    root = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"
    return root / "data"
