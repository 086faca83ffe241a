"""Redis implementations of the engine's repositories and dispatch. The only place redis is used."""
