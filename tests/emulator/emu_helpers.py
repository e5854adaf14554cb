"""Helpers for the emulator tests: plain aiohttp calls that know only the endpoint pages."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

PREFIX = "/koodrive/ose/v1"

_UNSET: Any = object()


def x_date(offset: float = 0.0) -> str:
    """X-Date for now + offset seconds, floored, in yyyyMMdd'T'HHmmss'Z'."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset))


# Valid bodies straight from the pages' examples (and their documented variants).
TRANSFER = {"taskType": 0, "srcUserId": "1397687227244555008", "dstUserId": "1507947856550550784"}
IMPORT = {"taskType": 1, "orgId": "org-1", "orgUserId": "org-user-1", "resultId": "r-1"}
SHARE_SAVE = {
    "taskType": 2,
    "containerId": "IAABh_RdhS8bOg0cA1684711052660690818",
    "fileIds": ["Fk63FCWhcDAga2puvYKRG1oTMjs-m30sI"],
    "shareId": "1689765568237837824",
    "kdstoken": "aea2968ec8cfac338cd4647f071c44644c491d0a2039cd6c",
    "targetFileId": {
        "fileId": "FhTB_fxx3LRszaivDFX9NN5JRNLnS9Gob",
        "containerId": "IAABh_RdhS8bOg0cA1684711052660690818",
    },
}
SHARE_PACKAGE = {
    "taskType": 1,
    "containerId": "c-1",
    "fileIds": ["f-1", "f-2"],
    "shareId": "s-1",
    "zipName": "bundle.zip",
}
JOB_COPY = {
    "taskType": 1,
    "actionType": 101,
    "dstContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
    "taskInfo": {
        "srcContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
        "newFilePath": "Fm9UdqBNTAQDos6l1xPlFnIqXJg2-UdqA",
        "fileInfo": [{"fileId": "FuZmQ66CF0DdpKRG1Y29Iwajbq04Nhwu3"}],
    },
}


DROP: Any = object()


def body(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Deep copy of ``base`` with top-level changes; a value of DROP removes the key."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def job(task_type: int, action: int | None = None, **info: Any) -> dict[str, Any]:
    """A valid jobs body for a task type (and actionType, absent when None)."""
    task_info: dict[str, Any] = {
        "srcContainerId": "src-c",
        "fileInfo": [{"fileId": "F1", "filePath": "/a/F1"}],
    }
    task_info.update(info)
    out: dict[str, Any] = {"taskType": task_type, "dstContainerId": "dst-c", "taskInfo": task_info}
    if action is not None:
        out["actionType"] = action
    return out


ROUTES = {
    "create_task": ("POST", f"{PREFIX}/task/create", TRANSFER),
    "create_share_task": ("POST", f"{PREFIX}/share/tasks", SHARE_SAVE),
    "create_job": ("POST", f"{PREFIX}/jobs", JOB_COPY),
    "get_task": ("GET", f"{PREFIX}/task/{{task_id}}", None),
    "list_tasks": ("GET", f"{PREFIX}/task/list", None),
}

#: The job and share-task reads of API-EXTRA.md (their valid requests need a
#: task to exist, so the generic fault tests keep to ROUTES).
JOB_ROUTES = {
    "get_job": ("GET", f"{PREFIX}/{{job_id}}", None),
    "list_jobs": ("GET", f"{PREFIX}/jobs", None),
    "cancel_job": ("POST", f"{PREFIX}/cancel", {"jobId": "1"}),
    "get_share_task": (
        "POST",
        f"{PREFIX}/share/taskDetail",
        {"taskId": "1", "shareId": SHARE_SAVE["shareId"], "kdstoken": SHARE_SAVE["kdstoken"]},
    ),
}

#: The session routes (API-EXTRA.md D): their own headers, no X-User-Id / X-Date.
SESSION_ROUTES = {
    "create_session": ("POST", f"{PREFIX}/session{{slash:/?}}", {"code": "auth-code-1"}),
    "refresh_session": ("POST", f"{PREFIX}/session/refresh", None),
    "refresh_carrier_token": ("POST", f"{PREFIX}/auth/refreshToken", {"refreshToken": "rt"}),
}


@dataclass
class Reply:
    """What came back."""

    status: int
    text: str
    headers: Any
    json: Any = field(default=None)


class Api:
    """Plain aiohttp calls against one emulator as one user."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        *,
        user: str = "user-1",
        token: str = "tok-1",
        agent: str = "test-agent",
    ) -> None:
        self.http = http
        self.url = url
        self.user = user
        self.token = token
        self.agent = agent

    def as_user(self, user: str) -> Api:
        """The same emulator, another X-User-Id."""
        return Api(self.http, self.url, user=user, token=self.token, agent=self.agent)

    def headers(self, **overrides: str | None) -> dict[str, str]:
        """Headers the pages ask for; an override of None removes that header."""
        base: dict[str, str | None] = {
            "Authorization": f"Bearer+{self.token}",
            "X-User-Id": self.user,
            "X-Date": x_date(),
            "X-Hw-Agentname": self.agent,
            "language": "en-US",
        }
        for key, value in overrides.items():
            base[key.replace("_", "-")] = value
        return {k: v for k, v in base.items() if v is not None}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _UNSET,
        data: bytes | str | None = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request and read the reply (JSON parsed when it parses)."""
        kwargs: dict[str, Any] = {"headers": self.headers() if headers is None else headers}
        if json_body is not _UNSET:
            kwargs["data"] = json.dumps(json_body)
            kwargs["headers"] = {**kwargs["headers"], "Content-Type": "application/json"}
        elif data is not None:
            kwargs["data"] = data
        if params is not None:
            kwargs["params"] = params
        async with self.http.request(method, self.url + path, **kwargs) as resp:
            text = await resp.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            return Reply(resp.status, text, resp.headers, parsed)

    async def call(self, route: str, *, task_id: str = "1", **kwargs: Any) -> Reply:
        """Call a route by name; POST routes default to their example body."""
        method, path, example = ROUTES[route]
        if method == "POST" and "json_body" not in kwargs and "data" not in kwargs:
            kwargs["json_body"] = example
        return await self.request(method, path.format(task_id=task_id), **kwargs)

    async def create(self, route: str = "create_task", payload: Any = None) -> str:
        """Create a task and return its id (asserting success)."""
        method, path, example = ROUTES[route]
        reply = await self.request(method, path, json_body=example if payload is None else payload)
        assert reply.status == 200, reply.text
        assert reply.json["code"] in (0, "0")
        return str(reply.json["data" if route == "create_job" else "taskId"])

    async def get(self, task_id: str) -> Reply:
        """GET task/{id}."""
        return await self.request("GET", f"{PREFIX}/task/{task_id}")

    async def list(self, params: Any = None) -> Reply:
        """GET task/list."""
        return await self.request("GET", f"{PREFIX}/task/list", params=params)
