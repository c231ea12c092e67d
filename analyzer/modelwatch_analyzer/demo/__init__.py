"""``modelwatch demo``: the whole product on generated data.

``run`` tells the story step by step; ``world`` is the simulated applicants,
the drift event and the credit model; ``pipeline`` the in-process telemetry
(SDK -> OTLP -> receiver -> store, with a simulated clock and a local webhook);
``traffic`` the simulated days of predictions and late labels;
``daily_analysis`` the baseline, the daily analyses and alerts; ``summary``
what the analyses found; ``options`` what the command was asked for.
"""
