"""The ``modelwatch`` command: one module per command group."""

from modelwatch_analyzer.cli.command import main

__all__ = ["main"]
