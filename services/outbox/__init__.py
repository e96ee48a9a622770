"""Outbox: every message that leaves for WhatsApp."""
