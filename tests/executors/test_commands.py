"""Running scheduler commands: retries of transient failures with bounded jittered backoff,
one-line errors, and the index-set helpers. Uses the recording fake binaries."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fakes import FakeScheduler

from reflow.errors import ExecutorError
from reflow.executors.commands import (
    CommandResult,
    CommandRunner,
    RetryPolicy,
    compress_indices,
    error_line,
    exit_code_from_wait_status,
    expand_indices,
)

TRANSIENT = (r"socket timed out",)


def test_index_sets_compress_and_expand() -> None:
    assert compress_indices([9, 0, 1, 2, 3, 7, 10]) == "0-3,7,9-10"
    assert compress_indices([5]) == "5"
    assert expand_indices("0-3,7,9-10") == [0, 1, 2, 3, 7, 9, 10]
    assert expand_indices("1-9:4%2") == [1, 5, 9]


def test_unreadable_index_set_names_the_bad_part() -> None:
    with pytest.raises(ValueError, match="unreadable part 'x'"):
        expand_indices("1,x")


def test_wait_status_becomes_a_shell_exit_code() -> None:
    assert exit_code_from_wait_status(3 << 8) == 3
    assert exit_code_from_wait_status(9) == 137


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(attempts=8, base_delay=1.0, max_delay=10.0, jitter=0.25)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(1, 8)]
    nominal = [1, 2, 4, 8, 10, 10, 10]
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * 0.75 <= delay <= expected * 1.25
    assert len(set(delays[4:])) == 3  # jittered, not lockstep


def test_transient_failures_are_retried_until_success(fake: FakeScheduler) -> None:
    timed_out = {"stderr": "sbatch: error: Socket timed out on send/recv operation\n",
                 "returncode": 1}  # fmt: skip
    fake.reply("sbatch", timed_out, timed_out, "4242\n")
    result = fake.runner().run("sbatch", ["--parsable"], transient=TRANSIENT)
    assert result.stdout == "4242\n"
    assert len(fake.calls("sbatch")) == 3
    assert len(fake.sleeps) == 2
    assert 0.75 <= fake.sleeps[0] <= 1.25 and 1.5 <= fake.sleeps[1] <= 2.5


def test_retries_are_bounded(fake: FakeScheduler) -> None:
    fake.reply("sbatch", {"stderr": "sbatch: error: Socket timed out\n", "returncode": 1})
    with pytest.raises(ExecutorError, match=r"sbatch failed 3 times .*Socket timed out"):
        fake.runner(attempts=3).run("sbatch", [], transient=TRANSIENT)
    assert len(fake.calls("sbatch")) == 3
    assert len(fake.sleeps) == 2


def test_a_refusal_is_returned_at_once(fake: FakeScheduler) -> None:
    fake.reply("sbatch", {"stderr": "sbatch: error: invalid partition\n", "returncode": 1})
    result = fake.runner().run("sbatch", [], transient=TRANSIENT)
    assert result.returncode == 1
    assert len(fake.calls("sbatch")) == 1
    assert fake.sleeps == []


def test_stdin_reaches_the_command(fake: FakeScheduler) -> None:
    fake.runner().run("qsub", ["-N", "x"], stdin="#!/bin/sh\nexec true\n")
    assert fake.calls("qsub")[0].stdin == "#!/bin/sh\nexec true\n"


def test_missing_command_names_the_tool_and_the_config_key() -> None:
    runner = CommandRunner({"sbatch": "/nonexistent/sbatch"})
    with pytest.raises(ExecutorError, match=r"'/nonexistent/sbatch' was not found.*commands = "):
        runner.run("sbatch", [])


def test_a_command_past_its_timeout_is_retried(tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 10\n")
    slow.chmod(0o755)
    sleeps: list[float] = []
    runner = CommandRunner({"squeue": str(slow)}, timeout=0.2,
                           retry=RetryPolicy(attempts=2), sleep=sleeps.append)  # fmt: skip
    with pytest.raises(ExecutorError, match=r"squeue failed 2 times .*no answer within 0.2 s"):
        runner.run("squeue", [])
    assert len(sleeps) == 1


def test_a_submit_past_its_timeout_is_not_sent_again(tmp_path: Path) -> None:
    """The scheduler may have accepted the job before its answer was lost."""
    slow = tmp_path / "slow"
    slow.write_text(f"#!/bin/sh\necho sent >> {tmp_path}/sent\nexec sleep 10\n")
    slow.chmod(0o755)
    runner = CommandRunner({"sbatch": str(slow)}, timeout=0.2, retry=RetryPolicy(attempts=3))
    with pytest.raises(ExecutorError, match=r"sbatch did not answer within 0.2 s and may still "
                                            r"have submitted the job, so it is not sent again"):
        runner.run("sbatch", [], submits=True)
    assert (tmp_path / "sent").read_text() == "sent\n"


def test_error_line_prefers_the_specific_error() -> None:
    result = CommandResult(
        1, "", "sbatch: error: invalid partition specified: nope\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
    )  # fmt: skip
    assert error_line(result) == (
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )
    assert error_line(CommandResult(2, "", "")) == "exit status 2 and no message"


def test_runner_refuses_a_tool_missing_from_the_list_config_checks_against() -> None:
    # `[executor.commands]` accepts only SCHEDULER_TOOLS, so a client an adapter runs must be in it.
    with pytest.raises(ValueError, match="not in SCHEDULER_TOOLS"):
        CommandRunner().run("sinfo", ["-h"])
