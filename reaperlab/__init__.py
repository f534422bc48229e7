"""The ``reaperlab`` console command: one name for the project's ``python -m`` commands.

See reaperlab.cli. The dispatcher imports none of the other packages: each
subcommand replaces it (exec) with the ``python -m`` form it names.
"""
