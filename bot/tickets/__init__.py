"""Citizen-message tickets: working-day calendar, answer deadlines, ticket service."""
