"""rlhfkit.instrument."""
