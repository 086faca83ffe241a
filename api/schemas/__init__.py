"""Request and response models of the API, one module per resource (never the engine's domain
classes). Times are Unix epoch seconds (floats); durations are seconds unless the name says ``_ms``."""
