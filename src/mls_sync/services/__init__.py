"""The use cases every edge calls."""
