"""The analyzer benchmark's parts (run it as ``python benchmarks/bench_analyzer.py``, which puts this package on the path).

``data`` generates the seeded data set and loads it into a store; ``harness`` runs each
contender in a process of its own and measures it; ``modelwatch_run`` is the modelwatch
contender, ``baselines`` the numpy/scipy and Evidently ones; ``printout`` what is printed.
"""
