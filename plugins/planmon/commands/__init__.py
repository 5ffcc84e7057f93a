"""Command groups of the ``planmon`` CLI, one module each (see ``planmon.cli``)."""
