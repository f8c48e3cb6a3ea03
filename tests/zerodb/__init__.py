"""Tests of the ZeroDB backend against an emulator of ZeroDB's documented API."""
