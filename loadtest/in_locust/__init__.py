"""The code that runs inside Locust's own process, never in the harness.

gevent, which Locust brings, patches fork, waitpid and SIGCHLD for the whole process
that imports it: a forking server started from such a process has its children reaped
behind its back, which hides the very bug under study. So Locust always runs as a
subprocess of the harness (loadtest/load.py), and everything that needs locust or gevent
lives here, where the harness reaches it only by path, as Locust's ``-f`` files:

- ``locust_hooks.py``: loaded beside every locustfile, the user's own included: the
  harness's options, pacing at random phases, the final CSVs; it imports the three below.
- ``locustfile.py``: the HTTP client for our server; ``locust_raw.py``: raw TCP
  (``--protocol raw``).
- ``timeline.py`` (the 10 Hz request timeline), ``workers.py`` (per-worker figures of a
  distributed run), ``zombies_tab.py`` (the Zombies tab of ``--web``).

The files Locust loads by path keep names of their own (``locust_*``, ``locustfile``):
Locust registers each under its file name in ``sys.modules``, and a worker started with
``-f -`` writes each under that name into its temporary directory.

Nothing outside this package imports it, and importing the harness loads neither gevent
nor locust: tests/test_loadtest_in_locust.py checks both. This file imports nothing.
"""
