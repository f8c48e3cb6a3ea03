"""rlhfkit.datasets."""
