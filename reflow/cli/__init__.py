"""The two command lines: ``python pipeline.py COMMAND`` and the global ``reflow`` command.

Imported only by ``Workflow.cli()`` and the ``reflow`` console script, so that typer and rich
never load in a worker or on ``import reflow``.
"""
