"""Tests of the collector service."""
