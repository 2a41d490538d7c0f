"""OpenMetadata contract server for the testbed. See README.md."""
