"""The HTTP client the harness fires at the server (run by Locust as its own process).

Never imported by the harness or the tests: gevent, which Locust brings, patches
fork, waitpid and SIGCHLD for the whole process it is imported into.

Each answer is judged by :mod:`loadtest.expectations` (status, and the body our
server should send, or the substring asked for), so a wrong answer counts as a
failure with its reason, not as a success. Pacing and the final CSVs come from
locust_hooks.py, which the harness loads beside this file.
"""

from __future__ import annotations

from locust import FastHttpUser, task

from loadtest.expectations import from_locust_options


class ForkingServerUser(FastHttpUser):
    @task
    def request(self) -> None:
        expect = from_locust_options(self.environment.parsed_options)
        path, name, exact = expect.pick()
        with self.client.get(path, name=name, catch_response=True) as response:
            error = getattr(response, "error", None)
            if response.status_code == 0 and error is not None:  # no answer could be parsed
                response.failure(f"{type(error).__name__}: {error}"[:80])
                return
            reason = expect.judge_http(response.status_code, response.text or "", exact)
            if reason is not None:
                response.failure(reason)
