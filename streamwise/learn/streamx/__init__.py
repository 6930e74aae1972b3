"""Streaming deep RL (stream-x): learn from each sample once, no replay buffer, no batches."""
