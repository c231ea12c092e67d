"""The live web UI of ``modelwatch serve``: read-only pages over the store, charts drawn by uPlot in the browser."""
