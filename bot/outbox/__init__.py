"""Telling people: the e-mail and WeCom channels and the notification outbox (a neutral area)."""
