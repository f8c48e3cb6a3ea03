"""Tests of rlhfkit.datasets, rlhfkit.analytics (but stats) and the export / stats commands."""
