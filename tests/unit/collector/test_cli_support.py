"""collector.cli_support: the one way every ``driftline`` subcommand calls a server and reports errors.
Against a real (tiny) HTTP server: what arrives is what the server saw."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from collector.cli_support import api_call, safe, where_options
from tests.servers import free_port, running


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"key": request.headers.get("x-api-key"), "params": dict(request.query_params),
                         "body": (await request.json()) if await request.body() else None})


async def _fail(request: Request) -> PlainTextResponse:
    return PlainTextResponse("x" * 400 + "y" * 400, status_code=403)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = Starlette(routes=[Route("/echo", _echo, methods=["GET", "POST"]), Route("/fail", _fail, methods=["PUT"])])
    with running(app, log_level="warning") as u:
        yield u


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    where_options(p)
    return p.parse_args(argv)


def test_the_key_comes_from_the_option_else_the_environment_else_none(url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_API_KEY", raising=False)
    assert api_call(_args(["--api", url + "/"]), "GET", "/echo")["key"] is None
    monkeypatch.setenv("DRIFTLINE_API_KEY", "dl_env_secret")
    assert api_call(_args(["--api", url]), "GET", "/echo")["key"] == "dl_env_secret"
    assert api_call(_args(["--api", url, "--api-key", "dl_opt_secret"]), "GET", "/echo")["key"] == "dl_opt_secret"


def test_none_params_are_left_out_and_the_body_is_json(url: str) -> None:
    out = api_call(_args(["--api", url]), "POST", "/echo", params={"a": "1", "b": None, "n": 3}, body=[{"x": 1}])
    assert out == {"key": None, "params": {"a": "1", "n": "3"}, "body": [{"x": 1}]}


def test_an_error_status_names_method_path_status_and_the_start_of_the_answer(url: str) -> None:
    with pytest.raises(ValueError) as e:
        api_call(_args(["--api", url]), "PUT", "/fail")
    assert str(e.value) == "PUT /fail: HTTP 403: " + "x" * 400 + "y" * 100


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"^GET /echo: ConnectError"):
        api_call(_args(["--api", f"http://127.0.0.1:{free_port()}"]), "GET", "/echo")


def test_store_and_api_are_mutually_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args(["--store", "/tmp/x", "--api", "http://h"])
    assert "not allowed with argument" in capsys.readouterr().err


class _Boom(Exception):
    pass


def test_safe_prints_one_line_naming_the_command_and_returns_1(capsys: pytest.CaptureFixture[str]) -> None:
    def fail(exc: Exception) -> int:
        raise exc

    assert safe(lambda a: fail(ValueError("bad days")))(argparse.Namespace(command="retention")) == 1
    assert capsys.readouterr().err == "driftline retention: bad days\n"
    assert safe(lambda a: fail(_Boom("spec")), _Boom)(argparse.Namespace()) == 1
    assert capsys.readouterr().err == "driftline: spec\n"
    assert safe(lambda a: 0)(argparse.Namespace()) == 0
    with pytest.raises(KeyError):                     # only the errors it was given
        safe(lambda a: fail(KeyError("k")), _Boom)(argparse.Namespace())
