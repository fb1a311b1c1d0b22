"""The `dcgan` command."""

from dcgan.cli.app import main

__all__ = ["main"]
