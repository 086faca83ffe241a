"""The ``wes`` application: the command line (``wes_cli.main``), the processes `wes up` supervises
(``wes_cli.components``) and the benchmarks (``wes_cli.bench``). It uses the ``engine`` library, the
control API and the dashboard; nothing there imports it back."""
