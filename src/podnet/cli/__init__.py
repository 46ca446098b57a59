"""The `podnet` command."""
