"""Observing processes: how many children and zombies a process holds, cheaply enough
to sample 20 times a second, and what to do about a leak.

Modules (import the one you need; this package imports nothing eagerly):

- ``proctable``  the few /proc facts needed (children lists, stat), with fallbacks
- ``sampler``    ``Sampler(pid).sample() -> Sample``: one row of samples.csv
- ``recorder``   ``Recorder``: a daemon thread writing samples.csv
- ``procstatus`` SIGCHLD disposition, namespace PID, command line
- ``doctor``     ``examine`` / ``examine_all``: counts, growth, verdict with the fix
- ``watch``      a run directory from sampling any process
- ``diskio``     records written whole (atomic), a disk reserve, causes in words
- ``machine``    ``machine_info()``, ``pid_headroom()``
- ``contract``   the run directory's file names, samples.csv's columns, ``Sample``
- ``cpumeter``   ``CpuMeter``: CPU seconds of a process tree
- ``commandline`` one-line usage errors and SIGTERM as Ctrl-C, for every command line
- ``leaks``      ``ChildWatch``: the children a test left, whom each counts against
- ``spawns``     where each child of this process was started (``TRACKER``)
- ``owners``     who in this process will reap a child (a Popen, multiprocessing)
- ``inherited``  the parent's sockets and pipes a child holds
- ``leakreport`` a leaked child in words, with its spawn site
- ``pytest_plugin`` ``pytest --child-leaks=warn|fail`` (the ``pytest11`` entry point)
- ``subreaper``  ``become_subreaper()``: orphaned descendants come back to this process
- ``errors``     ``NoSuchProcess``, ``ZombieProcess``, ``AccessDenied``

diagnostics imports neither loadtest nor reports (nor locust).
"""
