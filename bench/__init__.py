"""``python -m bench``: the project's own speed, side by side with the alternatives.

A load-testing tool has to know its own numbers: how fast the server under test
is next to what a user would otherwise run, what the sampler costs, whether
watching the server slows it down, and whether the load generator (not the
server) is the bottleneck. Contenders are measured in alternating rounds, so a
noisy machine hits all of them alike.
"""
