"""The public surface: ``__all__`` sorted and complete, everything documented;
and the ``chunked`` helper."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator

import pytest

import koodrive_async
from koodrive_async import InvalidRequestError, chunked

#: Private modules whose ``__all__`` is part of the public API (re-exported by the package).
PUBLIC_MODULES = ("_exceptions", "_models", "_policies", "_session", "_utils")


def test_all_is_sorted_and_unique() -> None:
    names = koodrive_async.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_reexports_every_public_name_of_the_submodules(module_name: str) -> None:
    module = importlib.import_module(f"koodrive_async.{module_name}")
    missing = sorted(set(module.__all__) - set(koodrive_async.__all__))
    assert missing == []
    for name in module.__all__:
        assert getattr(koodrive_async, name) is getattr(module, name)


def test_everything_in_all_is_importable_and_documented() -> None:
    for name in koodrive_async.__all__:
        obj = getattr(koodrive_async, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        doc = inspect.getdoc(obj)
        assert doc and doc.strip(), f"{name} has no docstring"
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not callable(member):
                    continue
                assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_session_methods_are_documented_with_sections() -> None:
    session_cls = koodrive_async.KooDriveSession
    for name in (
        "create_transfer_task",
        "create_import_task",
        "create_share_task",
        "create_job",
        "submit",
        "get_task",
        "list_tasks",
        "iter_tasks",
    ):
        doc = inspect.getdoc(getattr(session_cls, name)) or ""
        assert "Raises:" in doc and ("Returns:" in doc or "Yields:" in doc), name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from koodrive_async import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(koodrive_async.__all__)


# ---- chunked ------------------------------------------------------------------------------


def test_chunked_splits_lists() -> None:
    assert list(chunked([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(chunked([1, 2, 3, 4], 2)) == [[1, 2], [3, 4]]
    assert list(chunked([], 3)) == []
    assert list(chunked(iter("abc"), 5)) == [["a", "b", "c"]]


def test_chunked_is_lazy_on_generators() -> None:
    pulled: list[int] = []

    def numbers() -> Iterator[int]:
        for i in range(10**9):
            pulled.append(i)
            yield i

    chunks = chunked(numbers(), 1000)
    assert pulled == []
    first = next(chunks)
    assert first == list(range(1000))
    assert len(pulled) == 1000


def test_chunked_size_is_checked_at_the_call() -> None:
    for size in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidRequestError) as info:
            chunked([1], size)  # type: ignore[arg-type]
        assert info.value.field == "size"


def test_chunked_feeds_share_requests() -> None:
    ids = [f"F{i}" for i in range(2500)]
    requests = [
        koodrive_async.ShareTaskRequest(
            koodrive_async.ShareTaskType.PACKAGE,
            container_id="c",
            file_ids=part,
            share_id="s",
            zip_name=f"part{n}.zip",
        )
        for n, part in enumerate(chunked(ids, 1000))
    ]
    assert [len(r.file_ids) for r in requests] == [1000, 1000, 500]
