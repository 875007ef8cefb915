"""Inbound: the WeChat callback, comment polling, storing each message once, triage and automatic replies."""
