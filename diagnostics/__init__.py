"""Observing processes: how many children and zombies a process holds, cheaply enough
to sample 20 times a second, and what to do about a leak.

Modules (import the one you need; this package imports nothing eagerly):

- ``proctable``  the few /proc facts needed (children lists, stat), with fallbacks
- ``sampler``    ``Sampler(pid).sample() -> Sample``: one row of samples.csv
- ``recorder``   ``Recorder``: a daemon thread writing samples.csv
- ``procstatus`` SIGCHLD disposition, namespace PIDs, command line
- ``doctor``     ``examine`` / ``examine_all``: counts, growth, verdict with the fix
- ``whoreaps``   who must reap a zombie (its parent, PID 1, a subreaper, an init) and the fix
- ``inherited``  children holding their parent's listening socket or other clients' sockets
- ``outlook``    the PID limit a parent's tree reaches first, and when (doctor's line)
- ``sockets``    listening TCP sockets and their accept queues, from the kernel's tables
- ``watch``      a run directory from sampling any process
- ``diskio``     records written whole (atomic), a disk reserve, causes in words
- ``machine``    ``machine_info()``, ``pid_headroom()``
- ``limits``     the PID limits a fork meets (pids cgroups, pid_max, threads-max,
  RLIMIT_NPROC), each with its use; the tightest; the time to reach it (stdlib only)
- ``census``     zombies per parent, host-wide (a pidfd per process) or in one tree
- ``exporter``   ``ZombieCollector``: the Prometheus exporter, read at each scrape
- ``contract``   the run directory's file names, samples.csv's columns, ``Sample``
- ``cpumeter``   ``CpuMeter``: CPU seconds of a process tree
- ``commandline`` one-line usage errors and SIGTERM as Ctrl-C, for every command line
- ``defaults``   ``Bounded`` settings (a default and its range) and the sampling ``INTERVAL``
- ``leaks``      ``ChildWatch``: the children a test left, whom each counts against
- ``spawns``     where each child of this process was started (``TRACKER``)
- ``owners``     who in this process will reap a child (a Popen, multiprocessing)
- ``heldfds``    the parent's sockets and pipes a child holds (the plugin's)
- ``leakreport`` a leaked child in words, with its spawn site
- ``pytest_plugin`` ``pytest --child-leaks=warn|fail`` (the ``pytest11`` entry point)
- ``subreaper``  ``become_subreaper()``: orphaned descendants come back to this process
- ``errors``     ``NoSuchProcess``, ``ZombieProcess``, ``AccessDenied``
- ``event_recorder`` ``EventRecorder``: every fork, exit and reap of a tree into events.csv
- ``proc_connector`` the kernel's process-events connector (fork, exec, exit; timestamps)
- ``pidfds``     reap times from pidfds, and the check that this kernel gives them
- ``procfs``     the /proc facts the event recorder needs, standard library only
- ``clocks``     the kernel's clocks put on the samples' (unix) clock
- ``events``     ``ChildTree``: the record of a tree's children; ``read`` for events.csv
- ``lifetimes``  figures from events.csv: exact counts, zombie lifetimes, workers, cross-check

diagnostics imports neither loadtest nor reports (nor locust).
"""
