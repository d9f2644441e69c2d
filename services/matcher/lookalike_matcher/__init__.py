"""The matcher: an in-memory index of fingerprints, fed by the compacted topic."""
