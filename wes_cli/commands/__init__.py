"""The `wes` commands, one module per purpose; ``wes_cli.main`` adds them to the root group."""
