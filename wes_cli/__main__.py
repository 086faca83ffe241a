"""``python -m wes_cli``: the ``wes`` command."""

from wes_cli.main import main

if __name__ == "__main__":
    main()
