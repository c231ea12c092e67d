"""Alerts and retrain triggers from analysis results, with delivery recorded in ``ml_alerts``.

One module per concern: :mod:`.rules` (the ``[alerts]`` configuration: rules, routes, retraining),
:mod:`.firing` (the :class:`~.firing.Alerter`: cooldowns, exactly once across callers and processes,
pending rows and retries), :mod:`.rows` (the ``ml_alerts`` row), :mod:`.payload` (what an alert says),
and one module per delivery channel: :mod:`.webhook`, :mod:`.slack`, :mod:`.command`.
"""
