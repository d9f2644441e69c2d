"""The search gateway: one streamed answer for an image, words and filters."""
