"""Errors raised for transport failures carry no chained aiohttp exception:
those keep the request's headers, and with them the token."""

from __future__ import annotations

import asyncio
import traceback

import pytest

from koodrive_async import APIConnectionError, KooDriveSession, RetryPolicy

TOKEN = "TOPSECRET-chain-token"


async def _garbage_server() -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        # Not HTTP: aiohttp raises an error that holds the request's headers.
        writer.write(b"HTTP/1.1 abc garbage\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize("method", ["get_task", "create_transfer_task"])
async def test_a_broken_response_leaves_no_token_in_the_error_chain(method: str) -> None:
    server = await _garbage_server()
    port = server.sockets[0].getsockname()[1]
    try:
        async with KooDriveSession(
            f"http://127.0.0.1:{port}",
            user_id="u1",
            token=TOKEN,
            retry=RetryPolicy(max_attempts=1),
        ) as session:
            with pytest.raises(APIConnectionError) as info:
                if method == "get_task":
                    await session.get_task("1")
                else:
                    await session.create_transfer_task(src_user_id="a", dst_user_id="b")
    finally:
        server.close()
        await server.wait_closed()
    error = info.value
    assert error.__cause__ is None and error.__context__ is None
    assert TOKEN not in repr(error) and TOKEN not in str(error)
    assert TOKEN not in "".join(traceback.format_exception(error))
    assert error.possibly_created is (method == "create_transfer_task")
