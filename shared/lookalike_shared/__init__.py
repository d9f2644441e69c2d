"""Code every lookalike service imports: contracts, fingerprinting, config, Kafka and
Elasticsearch helpers, metrics and logging. Never a service's own logic."""
