"""Context: the process side, hand-set blocks across threads and tasks, and the ASGI / WSGI middlewares."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import httpx
import openai
import pytest

from rlhfkit.instrument import (
    RLHFContextMiddleware,
    RLHFInstrumentation,
    device_type,
    rlhf_wsgi_middleware,
)
from rlhfkit.testing import FakeLLMServer
from tests._servers import serve

from .conftest import user

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def test_process_context_from_config_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Platform, Python version, hostname and timezone are filled; app version / environment come from config or RLHFKIT_*."""
    monkeypatch.setenv("RLHFKIT_APP_VERSION", "9.9.9")
    monkeypatch.setenv("RLHFKIT_ENVIRONMENT", "staging")
    inst = RLHFInstrumentation(custom_context={"app": "chat"})
    try:
        ctx = inst.collect_context()
        assert ctx.platform and ctx.python_version and ctx.hostname and ctx.timezone
        assert (ctx.app_version, ctx.environment, ctx.custom) == ("9.9.9", "staging", {"app": "chat"})
    finally:
        inst.destroy(timeout_s=1)
    explicit = RLHFInstrumentation(app_version="1.0", environment="production")
    try:
        assert explicit.collect_context().app_version == "1.0"
        assert explicit.collect_context().environment == "production"
    finally:
        explicit.destroy(timeout_s=1)


def test_context_block_follows_threads_and_tasks(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """user_id, session_id and custom keys reach calls in copy_context threads and asyncio tasks started inside."""
    aclient = inst.instrument(openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test"))

    async def in_tasks() -> None:
        await asyncio.gather(
            *(aclient.chat.completions.create(model="m", messages=user(f"task {n}")) for n in range(2))
        )

    with inst.context(user_id="u-1", session_id="s-1", plan="pro"):
        oai.chat.completions.create(model="m", messages=user("direct"))
        ctx = contextvars.copy_context()
        thread = threading.Thread(
            target=ctx.run,
            args=(oai.chat.completions.create,),
            kwargs={"model": "m", "messages": user("thread")},
        )
        thread.start()
        thread.join(10)
        with inst.context(session_id="s-2"):
            asyncio.run(in_tasks())
    oai.chat.completions.create(model="m", messages=user("outside"))
    by_prompt = {i.prompt: i for i in inst.get_interactions()}
    for prompt in ("direct", "thread", "task 0", "task 1"):
        assert by_prompt[prompt].user_id == "u-1", prompt
        assert (
            by_prompt[prompt].environment is not None
            and by_prompt[prompt].environment.custom["plan"] == "pro"
        )
    assert by_prompt["direct"].session_id == "s-1" and by_prompt["task 0"].session_id == "s-2"
    assert by_prompt["outside"].user_id is None and by_prompt["outside"].session_id is None


def test_device_type_from_user_agent() -> None:
    """User agents map to mobile, tablet, desktop or bot."""
    assert [device_type(ua) for ua in (IPHONE, IPAD, DESKTOP, "curl/8.0", None)] == [
        "mobile",
        "tablet",
        "desktop",
        "bot",
        None,
    ]


def test_asgi_middleware_under_a_real_starlette_app(server: FakeLLMServer) -> None:
    """Calls made while a Starlette app served by uvicorn handles a request carry that request's context."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    inst = RLHFInstrumentation()
    client = inst.instrument(openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test"))

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        result = await client.chat.completions.create(model="m", messages=user(body["q"]))
        return JSONResponse({"answer": result.choices[0].message.content})

    app = Starlette(
        routes=[Route("/chat", chat, methods=["POST"])], middleware=[Middleware(RLHFContextMiddleware)]
    )
    try:
        with serve(app) as web:
            response = httpx.post(
                f"{web.url}/chat?x=1",
                json={"q": "from the web"},
                headers={
                    "User-Agent": IPHONE,
                    "Referer": "https://example.com/page",
                    "Accept-Language": "fr-FR,fr;q=0.9",
                    "X-User-Id": "web-user",
                    "X-Session-Id": "web-session",
                    "X-Screen-Resolution": "390x844",
                },
                timeout=10,
            )
            assert response.status_code == 200 and response.json()["answer"] == server.reply
        (i,) = inst.get_interactions()
        env = i.environment
        assert env is not None
        assert (env.user_agent, env.device_type, env.referrer, env.language) == (
            IPHONE,
            "mobile",
            "https://example.com/page",
            "fr-FR",
        )
        assert env.url == f"{web.url}/chat?x=1" and env.screen_resolution == "390x844"
        assert (i.user_id, i.session_id, env.user_id) == ("web-user", "web-session", "web-user")
    finally:
        inst.destroy(timeout_s=1)


def test_wsgi_middleware_under_a_real_flask_app(server: FakeLLMServer) -> None:
    """Calls made in a Flask view carry the request's context, with a configurable user id header."""
    from flask import Flask, jsonify, request

    inst = RLHFInstrumentation()
    client = inst.instrument(openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test"))
    app = Flask(__name__)

    @app.post("/chat")
    def chat() -> object:
        result = client.chat.completions.create(model="m", messages=user(request.get_json()["q"]))
        return jsonify(answer=result.choices[0].message.content)

    app.wsgi_app = rlhf_wsgi_middleware(app.wsgi_app, user_id_header="X-Account")  # type: ignore[method-assign]
    try:
        response = app.test_client().post(
            "/chat",
            json={"q": "from flask"},
            headers={
                "User-Agent": DESKTOP,
                "X-Account": "acct-7",
                "Accept-Language": "de",
                "X-Screen-Resolution": "1920x1080",
            },
        )
        assert response.status_code == 200
        (i,) = inst.get_interactions()
        env = i.environment
        assert env is not None and env.device_type == "desktop" and env.language == "de"
        assert env.screen_resolution == "1920x1080" and env.url is not None and env.url.endswith("/chat")
        assert i.user_id == "acct-7"
    finally:
        inst.destroy(timeout_s=1)
