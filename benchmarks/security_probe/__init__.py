"""The probes of ``benchmarks/probe_security.py``, one module per concern."""
