"""The collector side, embedded: OTLP receivers (gRPC and HTTP), OTLP to rows, and acknowledged-means-durable ingest."""
