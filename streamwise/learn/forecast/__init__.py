"""Online multi-step forecasters (HTM + SDR classifier, an LMU-feature network, persistence)."""
