"""Implementations of ServiceIntegrationPort."""
