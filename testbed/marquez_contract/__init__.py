"""Marquez contract server for the lineage-bus testbed (see README.md)."""
