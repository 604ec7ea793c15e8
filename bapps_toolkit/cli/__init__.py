"""The ``bapps`` command line. One module per sub-command (``cmd_*.py``), dispatched by :mod:`.main`."""
