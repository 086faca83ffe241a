"""Saga orchestration: acts on the domain's decisions through ports."""
