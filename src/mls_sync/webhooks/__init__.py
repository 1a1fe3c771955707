"""Webhooks to the host platform: signed with the Standard Webhooks scheme (signing.py)."""
