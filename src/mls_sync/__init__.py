"""MLS Status Sync: keep listings in step with their MLS and take down the posts of sold ones."""

__version__ = "0.1.0"
