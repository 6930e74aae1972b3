"""Hierarchical temporal memory, from the published equations (work in progress: encoders and
the spatial pooler so far)."""
