"""rlhfkit.analytics."""
