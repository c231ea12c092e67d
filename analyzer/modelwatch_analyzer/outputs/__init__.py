"""What leaves the analyzer: results as OTel metrics, alerts and retrain triggers with their delivery."""
