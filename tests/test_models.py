"""Request models reject every documented invalid combination on construction,
and accept every valid one; policies validate their numbers."""

from __future__ import annotations

from typing import Any

import pytest

from koodrive_async import (
    FileInfo,
    FileRef,
    ImportTaskRequest,
    InvalidRequestError,
    JobAction,
    JobOutcome,
    JobRequest,
    JobType,
    PollPolicy,
    RetryPolicy,
    ShareTaskRequest,
    ShareTaskType,
    Task,
    TaskFailedError,
    TaskStatus,
    TransferTaskRequest,
)

F = (FileInfo(file_id="F1"),)
RECYCLABLE = (FileInfo(file_id="F1", file_path="/a/F1"),)


def job(**kwargs: Any) -> JobRequest:
    base: dict[str, Any] = {
        "task_type": JobType.COPY,
        "src_container_id": "C1",
        "dst_container_id": "C2",
        "files": F,
    }
    base.update(kwargs)
    return JobRequest(**base)


VALID_PAIRS = [
    (JobType.COPY, None),
    (JobType.COPY, JobAction.COPY),
    (JobType.DELETE, JobAction.RECYCLE),
    (JobType.DELETE, JobAction.DELETE_PERMANENTLY),
    (JobType.MOVE, JobAction.MOVE),
    (JobType.RESTORE, None),
    (JobType.DECOMPRESS, JobAction.PREVIEW_ARCHIVE),
    (JobType.DECOMPRESS, JobAction.DECOMPRESS_ALL),
    (JobType.PACKAGE_DOWNLOAD, None),
    (JobType.CLEAR_RECYCLE_BIN, JobAction.CLEAR_RECYCLE_BIN),
]


@pytest.mark.parametrize(("task_type", "action"), VALID_PAIRS)
def test_documented_job_pairs_are_accepted(task_type: JobType, action: JobAction | None) -> None:
    request = job(task_type=task_type, action_type=action, files=RECYCLABLE)
    assert request.task_type is task_type
    assert request.action_type is action


def test_every_undocumented_pair_is_rejected() -> None:
    allowed = {(t, a) for t, a in VALID_PAIRS if a is not None} | {
        (JobType.DECOMPRESS, JobAction.DECOMPRESS_PARTIAL)
    }
    for task_type in JobType:
        for action in JobAction:
            if (task_type, action) in allowed:
                continue
            with pytest.raises(InvalidRequestError) as info:
                job(task_type=task_type, action_type=action, files=RECYCLABLE)
            assert info.value.field == "action_type"


def test_plain_ints_become_enums() -> None:
    request = job(task_type=2, action_type=202)
    assert request.task_type is JobType.DELETE
    assert request.action_type is JobAction.DELETE_PERMANENTLY


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task_type": 0}, "task_type"),
        ({"task_type": 8}, "task_type"),
        ({"task_type": True}, "task_type"),
        ({"task_type": "1"}, "task_type"),
        ({"action_type": 999}, "action_type"),
        ({"src_container_id": ""}, "src_container_id"),
        ({"dst_container_id": "  "}, "dst_container_id"),
        ({"files": ()}, "files"),
        ({"files": (FileInfo(file_path="/x"),)}, "files"),
        ({"files": ("F1",)}, "files"),
        ({"files": "F1"}, "files"),
        ({"task_type": JobType.DELETE, "action_type": JobAction.RECYCLE}, "files"),
        ({"password": "secret"}, "password"),
        ({"uncompress_file_paths": ("a",)}, "uncompress_file_paths"),
        ({"new_file_path": ""}, "new_file_path"),
    ],
)
def test_invalid_jobs_are_rejected(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        job(**kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_partial_decompression_paths_are_optional_as_on_the_page() -> None:
    # The jobs page marks uncompressFilePaths "Mandatory: No" even for 503.
    request = job(task_type=JobType.DECOMPRESS, action_type=JobAction.DECOMPRESS_PARTIAL)
    assert request.uncompress_file_paths is None


def test_clear_recycle_bin_needs_no_files() -> None:
    request = job(task_type=JobType.CLEAR_RECYCLE_BIN, files=())
    assert request.files == ()


def test_decompress_partial_with_paths_and_password() -> None:
    request = job(
        task_type=JobType.DECOMPRESS,
        action_type=JobAction.DECOMPRESS_PARTIAL,
        uncompress_file_paths=["a/b.txt"],
        password="hunter2",
    )
    assert request.uncompress_file_paths == ("a/b.txt",)
    assert "hunter2" not in repr(request)


def share(**kwargs: Any) -> ShareTaskRequest:
    base: dict[str, Any] = {
        "task_type": ShareTaskType.SAVE,
        "container_id": "C1",
        "file_ids": ["F1"],
        "share_id": "S1",
        "target": FileRef("root", "C1"),
    }
    base.update(kwargs)
    return ShareTaskRequest(**base)


def test_share_requests() -> None:
    assert share().file_ids == ("F1",)
    package = share(task_type=ShareTaskType.PACKAGE, target=None, zip_name="all.zip")
    assert package.task_type is ShareTaskType.PACKAGE
    assert len(share(file_ids=[f"F{i}" for i in range(1000)]).file_ids) == 1000
    assert "tok-secret" not in repr(share(kdstoken="tok-secret"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"file_ids": []}, "file_ids"),
        ({"file_ids": "F1"}, "file_ids"),
        ({"file_ids": [f"F{i}" for i in range(1001)]}, "file_ids"),
        ({"file_ids": ["F1", ""]}, "file_ids[1]"),
        ({"target": None}, "target"),
        ({"task_type": ShareTaskType.PACKAGE, "target": None}, "zip_name"),
        ({"task_type": 3}, "task_type"),
        ({"container_id": ""}, "container_id"),
        ({"share_id": None}, "share_id"),
    ],
)
def test_invalid_shares_are_rejected(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        share(**kwargs)
    assert info.value.field == field


def test_file_ref_needs_both_ids() -> None:
    with pytest.raises(InvalidRequestError):
        FileRef("", "C1")
    with pytest.raises(InvalidRequestError):
        FileRef("root", "")


def test_transfer_and_import_requests() -> None:
    TransferTaskRequest("u1", "u2")
    ImportTaskRequest("o1", "ou1")
    ImportTaskRequest("o1", "ou1", result_id="r1")
    with pytest.raises(InvalidRequestError):
        TransferTaskRequest("u1", "")
    with pytest.raises(InvalidRequestError):
        ImportTaskRequest("", "ou1")
    with pytest.raises(InvalidRequestError):
        ImportTaskRequest("o1", "ou1", result_id="")


def test_task_tolerates_unknown_values() -> None:
    task = Task(task_id="1", status=9, task_type=42)
    assert not task.is_terminal
    assert not task.succeeded
    assert Task(task_id="1", status=TaskStatus.SUCCESS).is_terminal
    assert TaskStatus.FAILED.is_terminal and not TaskStatus.EXECUTING.is_terminal


def test_job_outcome_ok() -> None:
    request = TransferTaskRequest("u1", "u2")
    done = Task(task_id="1", status=TaskStatus.SUCCESS)
    failed = Task(task_id="1", status=TaskStatus.FAILED, result_code="18000205")
    assert JobOutcome(request, "1", done).ok
    assert not JobOutcome(request, "1", failed, TaskFailedError(failed)).ok
    assert not JobOutcome(request).ok
    assert "18000205" in str(TaskFailedError(failed))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"initial_backoff": 0},
        {"max_backoff": -1},
        {"max_retry_after": -1},
    ],
)
def test_retry_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"multiplier": 0.5}, {"max_interval": 0}, {"jitter": 1.0}, {"jitter": -0.1}],
)
def test_poll_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        PollPolicy(**kwargs)
