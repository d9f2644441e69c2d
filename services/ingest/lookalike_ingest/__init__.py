"""The ingest worker: catalogue events in, fingerprints and search documents out."""
