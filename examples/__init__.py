"""Sample warehouse sagas and the Python handlers they call."""
