"""Hugging Face transformers (5.x) integration: streamwise cache policies as ``transformers.Cache``.

Needs ``pip install 'streamwise[hf]'`` (transformers, pinned).
"""

from streamwise.hf.cache import PolicyLayer, StreamingCache, check_policy
from streamwise.hf.prefix import PrefixSession

__all__ = ["PolicyLayer", "PrefixSession", "StreamingCache", "check_policy"]
