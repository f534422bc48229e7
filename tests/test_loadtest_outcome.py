"""Whether a load did what was asked: each way a run can fail to load the server."""

from __future__ import annotations

import signal

import pytest

from loadtest.errors import FailedRequests, HarnessError
from loadtest.outcome import LoadOutcome, judge, rate_warning


def outcome(**changes) -> LoadOutcome:
    fields = {
        "requests": 1000, "failures": 0, "top_reason": None, "locust_exit": 0,
        "stopped_by_harness": False, "refused_at_cap": None, "locust_last_line": "bye",
    }  # fmt: skip
    return LoadOutcome(**{**fields, **changes})


def test_a_clean_load_passes() -> None:
    judge(outcome(), 1.0)
    judge(outcome(failures=10), 1.0)  # exactly 1%: not more than allowed


def test_too_many_failures_name_the_top_reason() -> None:
    with pytest.raises(FailedRequests, match=r"11 of 1000 requests failed .*'status 404' \(11\)"):
        judge(outcome(failures=11, top_reason=("status 404", 11)), 1.0)


def test_refusals_at_the_cap_are_not_failures() -> None:
    judge(outcome(failures=300, refused_at_cap=295), 1.0)
    with pytest.raises(FailedRequests, match="20 of 1000"):
        judge(outcome(failures=315, refused_at_cap=295), 1.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"locust_exit": -signal.SIGKILL},
            "Locust was killed by SIGKILL, .*1000 requests completed",
        ),
        ({"locust_exit": -signal.SIGKILL, "requests": None}, "no request recorded"),
        ({"locust_exit": 1}, r"Locust failed \(exit code 1\): bye"),
        ({"requests": None}, "Locust failed"),
        ({"requests": 0, "failures": 0}, "Locust completed no request: bye"),
    ],
)
def test_a_load_that_did_not_happen_fails(changes: dict, message: str) -> None:
    with pytest.raises(HarnessError, match=message) as raised:
        judge(outcome(**changes), 1.0)
    assert raised.value.status == "failed" and raised.value.exit_code == 1


def test_the_harness_stopping_locust_is_not_a_crash() -> None:
    judge(outcome(locust_exit=-signal.SIGTERM, stopped_by_harness=True), 1.0)


def test_a_load_the_harness_stopped_is_still_judged_on_its_failures() -> None:
    with pytest.raises(FailedRequests, match="500 of 1000"):
        judge(outcome(locust_exit=-signal.SIGTERM, stopped_by_harness=True, failures=500), 1.0)


def test_an_exit_code_that_could_not_be_waited_for_does_not_fail_a_load_that_ran() -> None:
    judge(outcome(locust_exit=None), 1.0)
    with pytest.raises(HarnessError, match=r"Locust failed \(exit code None\)"):
        judge(outcome(locust_exit=None, requests=None), 1.0)


def test_locust_ended_before_its_run_time_fails_even_with_exit_0() -> None:
    # Locust exits 0 on SIGTERM: its run time is what says it was ended early.
    with pytest.raises(HarnessError, match=r"Locust ended after 3\.1 s of its 20 s run") as raised:
        judge(outcome(ran_s=3.1, duration=20, locust_last_line="Got SIGTERM signal"), 1.0)
    assert "Got SIGTERM signal" in str(raised.value)
    judge(outcome(ran_s=21.5, duration=20), 1.0)


def test_a_lost_worker_fails_the_load() -> None:
    with pytest.raises(HarnessError, match=r"Locust lost 1 worker process\(es\).*PID 7: SIGKILL"):
        judge(outcome(lost_workers=("PID 7: SIGKILL, 4.0 s in",)), 1.0)


def test_locust_killed_after_the_cap_froze_it_is_a_warning_not_a_failure() -> None:
    warning = judge(
        outcome(locust_exit=-signal.SIGKILL, cap_reached=True, ran_s=2.0, duration=20), 1.0
    )
    assert warning == "Locust was killed by SIGKILL after the zombie cap had frozen the load"


def test_failures_after_the_cap_are_the_caps_doing() -> None:
    # A server that died when its fork was refused: every request after fails, none before.
    judge(outcome(failures=800, refused_at_cap=1, cap_reached=True, failures_at_cap=0), 1.0)
    with pytest.raises(FailedRequests, match="40 of 1000"):
        judge(outcome(failures=800, refused_at_cap=1, cap_reached=True, failures_at_cap=40), 1.0)


def test_a_rate_far_below_the_one_asked_is_said() -> None:
    assert rate_warning(100.0, 100.0, 20) is None
    assert rate_warning(80.0, 100.0, 20) is None
    assert rate_warning(None, 100.0, 20) is None
    assert rate_warning(5.0, 0.0, 20) is None  # --rate 0: as fast as they can
    text = rate_warning(61.0, 100.0, 20)
    assert text is not None and text.startswith(
        "the load ran at 61 requests/s, 61% of the --rate 100"
    )
