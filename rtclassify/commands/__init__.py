"""Subcommands of the rtclassify CLI, one module each (discovered by rtclassify.cli)."""
