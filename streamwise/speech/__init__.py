"""Speech: synthesised training data, real recordings to test on (the live recogniser's parts)."""
