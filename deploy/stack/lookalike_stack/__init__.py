"""The local stack: embedded Kafka/Elasticsearch stand-in, the three services and a sample
catalogue, on loopback, for demos and tests on machines without Docker."""
