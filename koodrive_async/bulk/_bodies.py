"""Request models <-> the pages' own JSON request bodies, as plan files hold them.

:func:`request_from_body` is the exact inverse of the codec's
``request_body`` (plus a job's top-level ``shareFolderId``, see
:func:`plan_body`), so a plan can describe each request with the body the
endpoint page shows. Reading is strict, unlike reading answers: an unknown
key, a wrong type or a missing field is an
:class:`~koodrive_async.InvalidRequestError` naming the field by its JSON path
(``taskInfo.fileInfo[2].fileId``).

Imports the models, the codec and the validators; never aiohttp, the session
or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from .. import _validate as check
from .._codec import request_body
from .._enums import JobAction, JobType, ShareTaskType, TaskType
from .._exceptions import InvalidRequestError
from .._models import (
    FileInfo,
    FileRef,
    ImportTaskRequest,
    JobRequest,
    Request,
    ShareTaskRequest,
    TransferTaskRequest,
)

__all__ = ["in_json_names", "plan_body", "request_from_body"]


def plan_body(request: Request) -> dict[str, Any]:
    """The body of a request as a plan file holds it (inverse of :func:`request_from_body`).

    It is the request body plus, for a job with a share folder, a top-level
    ``shareFolderId`` (sent as the ``x-hw-share-folder-id`` header).

    Args:
        request: One of the four request models.

    Returns:
        A new dict.
    """
    body = request_body(request)
    if isinstance(request, JobRequest) and request.share_folder_id is not None:
        body["shareFolderId"] = request.share_folder_id
    return body


class _Fields:
    """Reads the fields of one JSON object, remembering which were used."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidRequestError(
                f"{where or 'the body'} must be a JSON object, got {type(data).__name__}",
                field=where or "body",
            )
        self.data: Mapping[Any, Any] = data
        self.where = where
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        """The JSON path of a key of this object."""
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        value = self.data.get(key)
        if value is None and required:
            raise InvalidRequestError(f"{self.name(key)} is required", field=self.name(key))
        return value

    def _refuse(self, key: str, what: str, value: object) -> InvalidRequestError:
        name = self.name(key)
        return InvalidRequestError(f"{name} must be {what}, got {type(value).__name__}", field=name)

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, str):
            raise self._refuse(key, "a string", value)
        return value

    def text(self, key: str) -> str:
        self._get(key, True)
        value = self.opt_text(key)
        assert value is not None
        return value

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, False)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._refuse(key, "an integer", value)
        return value

    def array(self, key: str, *, required: bool = True) -> list[Any] | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, list | tuple):
            raise self._refuse(key, "an array", value)
        return None if value is None else list(value)

    def opt_texts(self, key: str) -> list[str] | None:
        values = self.array(key, required=False)
        for i, item in enumerate(values or ()):
            if not isinstance(item, str):
                raise self._refuse(f"{key}[{i}]", "a string", item)
        return values

    def texts(self, key: str) -> list[str]:
        self._get(key, True)
        values = self.opt_texts(key)
        assert values is not None
        return values

    def obj(self, key: str, *, required: bool = True) -> _Fields | None:
        value = self._get(key, required)
        return None if value is None else _Fields(value, self.name(key))

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                name = self.name(str(key))
                raise InvalidRequestError(f"unknown field {name}", field=name)


_E = TypeVar("_E", ShareTaskType, JobType, JobAction)


def _opt_member(enum_cls: type[_E], fields: _Fields, key: str) -> _E | None:
    value = fields.opt_integer(key)
    return None if value is None else check.enum_member(enum_cls, value, fields.name(key))


def _member(enum_cls: type[_E], fields: _Fields, key: str) -> _E:
    fields._get(key, True)
    value = _opt_member(enum_cls, fields, key)
    assert value is not None
    return value


def _fixed_task_type(fields: _Fields, expected: TaskType) -> None:
    value = fields.opt_integer("taskType")
    if value is not None and value != expected:
        raise InvalidRequestError(
            f"taskType must be {int(expected)} for this kind of request, got {value}",
            field="taskType",
        )


# Each reader reads every field (shape and type checked) and checks every
# object for unknown keys before any model is built, so the error names the
# first structural problem rather than a rule it happens to break.


def _transfer(f: _Fields) -> TransferTaskRequest:
    _fixed_task_type(f, TaskType.TRANSFER)
    src = f.text("srcUserId")
    dst = f.text("dstUserId")
    f.done()
    return TransferTaskRequest(src_user_id=src, dst_user_id=dst)


def _import(f: _Fields) -> ImportTaskRequest:
    _fixed_task_type(f, TaskType.BATCH_IMPORT)
    org_id = f.text("orgId")
    org_user_id = f.text("orgUserId")
    result_id = f.opt_text("resultId")
    f.done()
    return ImportTaskRequest(org_id=org_id, org_user_id=org_user_id, result_id=result_id)


def _share(f: _Fields) -> ShareTaskRequest:
    target_fields = f.obj("targetFileId", required=False)
    target: tuple[str, str] | None = None
    if target_fields is not None:
        target = (target_fields.text("fileId"), target_fields.text("containerId"))
        target_fields.done()
    share_type = _member(ShareTaskType, f, "taskType")
    container_id = f.text("containerId")
    file_ids = f.texts("fileIds")
    share_id = f.text("shareId")
    kdstoken = f.opt_text("kdstoken")
    zip_name = f.opt_text("zipName")
    f.done()
    return ShareTaskRequest(
        task_type=share_type,
        container_id=container_id,
        file_ids=file_ids,
        share_id=share_id,
        kdstoken=kdstoken,
        target=None if target is None else FileRef(*target),
        zip_name=zip_name,
    )


def _job(f: _Fields) -> JobRequest:
    info = f.obj("taskInfo")
    assert info is not None  # required=True
    files: list[tuple[str | None, str | None]] = []
    for i, item in enumerate(info.array("fileInfo", required=False) or ()):
        item_fields = _Fields(item, f"{info.where}.fileInfo[{i}]")
        files.append((item_fields.opt_text("fileId"), item_fields.opt_text("filePath")))
        item_fields.done()
    src_container_id = info.text("srcContainerId")
    new_file_path = info.opt_text("newFilePath")
    uncompress_file_paths = info.opt_texts("uncompressFilePaths")
    info.done()
    job_type = _member(JobType, f, "taskType")
    dst_container_id = f.text("dstContainerId")
    action_type = _opt_member(JobAction, f, "actionType")
    password = f.opt_text("password")
    share_folder_id = f.opt_text("shareFolderId")
    f.done()
    return JobRequest(
        task_type=job_type,
        src_container_id=src_container_id,
        dst_container_id=dst_container_id,
        files=[FileInfo(file_id, file_path) for file_id, file_path in files],
        action_type=action_type,
        new_file_path=new_file_path,
        uncompress_file_paths=uncompress_file_paths,
        password=password,
        share_folder_id=share_folder_id,
    )


_READERS: Final[Mapping[str, Callable[[_Fields], Request]]] = {
    "transfer": _transfer,
    "import": _import,
    "share": _share,
    "job": _job,
}


#: The models' Python names -> the bodies' JSON paths, per kind, so that an
#: error raised by a model rule names the field as the plan spells it.
_JSON_NAMES: Final[Mapping[str, Mapping[str, str]]] = {
    "job": {
        "files": "taskInfo.fileInfo",
        "file_id": "fileId",
        "file_path": "filePath",
        "src_container_id": "taskInfo.srcContainerId",
        "dst_container_id": "dstContainerId",
        "new_file_path": "taskInfo.newFilePath",
        "uncompress_file_paths": "taskInfo.uncompressFilePaths",
        "action_type": "actionType",
        "task_type": "taskType",
        "share_folder_id": "shareFolderId",
    },
    "share": {
        "task_type": "taskType",
        "container_id": "containerId",
        "file_ids": "fileIds",
        "share_id": "shareId",
        "target.file_id": "targetFileId.fileId",
        "target.container_id": "targetFileId.containerId",
        "target": "targetFileId",
        "zip_name": "zipName",
    },
    "transfer": {"src_user_id": "srcUserId", "dst_user_id": "dstUserId"},
    "import": {"org_id": "orgId", "org_user_id": "orgUserId", "result_id": "resultId"},
}


def in_json_names(kind: str, exc: InvalidRequestError) -> InvalidRequestError:
    """The model's error with every Python field name in its message replaced by its JSON path.

    For plan files (``_plan.py``): a plan is written in the bodies' JSON names,
    so its errors speak them too (``taskInfo.fileInfo[0].filePath``, not
    ``files[0].file_path``). :func:`request_from_body` itself keeps the
    models' messages, which library callers see.
    """
    names = _JSON_NAMES.get(kind, {})
    if not names:
        return exc
    # Longest first, and whole names only: "file_id" must not rewrite "file_ids".
    pattern = re.compile(
        r"(?<!\w)("
        + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        + r")(?![\w])"
    )
    # The message speaks the plan's language; ``field`` stays the model's name,
    # which library callers match on.
    return InvalidRequestError(pattern.sub(lambda m: names[m.group(1)], str(exc)), field=exc.field)


def request_from_body(kind: str, body: Mapping[str, Any]) -> Request:
    """Read a request model from the endpoint's own JSON request body.

    The exact inverse of the codec's ``request_body`` (and of
    :func:`plan_body`): for a job the body may also hold a top-level
    ``shareFolderId``. The share task's agent name is not accepted here: it
    belongs to the session.

    Args:
        kind: ``"transfer"`` or ``"import"`` (task/create; ``taskType`` may be
            left out, and if present must be 0 or 1 respectively), ``"share"``
            (share/tasks) or ``"job"`` (jobs).
        body: The camelCase body, as in the pages' example requests.

    Returns:
        The request model, validated.

    Raises:
        InvalidRequestError: Unknown kind, unknown field, wrong type, missing
            field, or any rule of the request model; the error names the field.
    """
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise InvalidRequestError(
            f"kind must be one of transfer, import, share, job; got {kind!r}", field="kind"
        )
    return reader(_Fields(body, ""))
