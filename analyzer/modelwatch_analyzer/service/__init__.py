"""The long-running processes: ``modelwatch serve`` (receivers, store and scheduled analyzer in one process) and the
scheduled analyzer, with their configuration."""
