"""The analysis: windows, scans in ClickHouse, baselines, drift, data quality, performance, detectors and results."""
