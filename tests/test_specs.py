"""The committed spec files are current, and our REST contract matches the original MailCue's.

``openapi.json``, ``postman_collection.json`` and ``schema.graphql`` are build outputs
(STYLE.md rule 19): each test regenerates one in memory with the functions of
``scripts/`` and diffs it against the committed copy.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "scripts"
REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "mailcue-openapi.json"
REGENERATE_REST = "python scripts/export_openapi.py && python scripts/openapi_to_postman.py"
REGENERATE_SDL = "python scripts/export_schema.py"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"mailcue_scripts_{name}", SCRIPTS / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_openapi = _script("export_openapi")
openapi_to_postman = _script("openapi_to_postman")
export_schema = _script("export_schema")


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return export_openapi.build_openapi()  # type: ignore[no-any-return]


def _assert_current(filename: str, fresh: str, command: str) -> None:
    path = REPO_ROOT / filename
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    if committed == fresh:
        return
    diff = difflib.unified_diff(
        committed.splitlines(), fresh.splitlines(), "committed", "generated", lineterm="", n=1
    )
    excerpt = "\n".join(list(diff)[:40])
    pytest.fail(
        f"{filename} is stale or missing. Regenerate it with:\n    {command}\n{excerpt}",
        pytrace=False,
    )


def test_openapi_json_is_current(openapi: dict[str, Any]) -> None:
    _assert_current("openapi.json", export_openapi.render(openapi), REGENERATE_REST)


def test_postman_collection_is_current(openapi: dict[str, Any]) -> None:
    collection = openapi_to_postman.build_collection(openapi)
    _assert_current(
        "postman_collection.json", openapi_to_postman.render(collection), REGENERATE_REST
    )


def test_schema_graphql_is_current() -> None:
    _assert_current("schema.graphql", export_schema.build_sdl(), REGENERATE_SDL)


def test_check_flag_reports_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.graphql"
    assert export_schema.main(["--output", str(target), "--check"]) == 1
    assert export_schema.main(["--output", str(target)]) == 0
    assert export_schema.main(["--output", str(target), "--check"]) == 0
    target.write_text("type Query { stale: Int }\n", encoding="utf-8")
    assert export_schema.main(["--output", str(target), "--check"]) == 1
    assert "python scripts/export_schema.py" in capsys.readouterr().err


AUTH_ROUTES = {
    "/api/v1/health": {"get"},
    "/api/v1/auth/login": {"post"},
    "/api/v1/auth/login/2fa": {"post"},
    "/api/v1/auth/refresh": {"post"},
    "/api/v1/auth/logout": {"post"},
    "/api/v1/auth/me": {"get"},
    "/api/v1/auth/register": {"post"},
    "/api/v1/auth/password": {"put"},
    "/api/v1/auth/totp/setup": {"post"},
    "/api/v1/auth/totp/confirm": {"post"},
    "/api/v1/auth/totp/disable": {"post"},
    "/api/v1/auth/api-keys": {"get", "post"},
    "/api/v1/auth/api-keys/{key_id}": {"patch", "delete"},
    "/api/v1/auth/api-keys/scopes": {"get"},
}


def test_auth_and_health_routes_exist(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    missing = [
        f"{method.upper()} {path}"
        for path, methods in AUTH_ROUTES.items()
        for method in sorted(methods)
        if method not in paths.get(path, {})
    ]
    assert not missing, f"routes missing from the OpenAPI document: {missing}"


def test_document_is_openapi_31_with_local_server(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.1")
    assert openapi["servers"][0]["url"] == "http://localhost:8088"


# --- contract comparison with the original server ----------------------------------------

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _resolve(schema: Any, doc: dict[str, Any]) -> dict[str, Any]:
    return openapi_to_postman.resolve(schema, doc)  # type: ignore[no-any-return]


def _shape(schema: Any, doc: dict[str, Any]) -> tuple[set[str], set[str]] | None:
    """Property names and required names of an object schema (through refs, anyOf, arrays).

    ``None`` means the schema is not an object (or there is no schema at all).
    """
    schema = _resolve(schema, doc)
    branches = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if branches:
        shapes = [shape for part in branches if (shape := _shape(part, doc)) is not None]
        if not shapes:
            return None
        return set().union(*(s[0] for s in shapes)), set().union(*(s[1] for s in shapes))
    if schema.get("type") == "array":
        return _shape(schema.get("items", {}), doc)
    if "properties" in schema or schema.get("type") == "object":
        return set(schema.get("properties", {})), set(schema.get("required", []))
    return None


def _success(operation: dict[str, Any]) -> str | None:
    codes = sorted(code for code in operation.get("responses", {}) if code.startswith("2"))
    return codes[0] if codes else None


def _json_schema(container: dict[str, Any], doc: dict[str, Any]) -> Any:
    content = _resolve(container, doc).get("content", {})
    return content.get("application/json", {}).get("schema")


def _compare_operation(
    where: str,
    ours: dict[str, Any],
    doc: dict[str, Any],
    ref: dict[str, Any],
    ref_doc: dict[str, Any],
) -> list[str]:
    problems: list[str] = []
    if _success(ours) != _success(ref):
        problems.append(f"{where}: success status {_success(ours)}, reference {_success(ref)}")

    our_body, ref_body = ours.get("requestBody"), ref.get("requestBody")
    if ref_body and not our_body:
        problems.append(f"{where}: no request body, reference has one")
    elif our_body and not ref_body and _resolve(our_body, doc).get("required"):
        problems.append(f"{where}: requires a request body, reference takes none")
    elif our_body and ref_body:
        our_types = set(_resolve(our_body, doc).get("content", {}))
        ref_types = set(_resolve(ref_body, ref_doc).get("content", {}))
        if not ref_types <= our_types:
            problems.append(f"{where}: body media types {our_types}, reference {ref_types}")
        mine = _shape(_json_schema(our_body, doc), doc)
        theirs = _shape(_json_schema(ref_body, ref_doc), ref_doc)
        if theirs and not mine:
            problems.append(f"{where}: request body is not an object, reference's is")
        elif theirs and mine:
            if missing := sorted(theirs[0] - mine[0]):
                problems.append(f"{where}: request body lacks properties {missing}")
            # Requiring less than the reference still takes every body its clients send.
            if not mine[1] <= theirs[1]:
                problems.append(
                    f"{where}: request body required {sorted(mine[1])}, "
                    f"reference {sorted(theirs[1])}"
                )

    code = _success(ref)
    if code and code == _success(ours):
        theirs = _shape(_json_schema(ref["responses"][code], ref_doc), ref_doc)
        mine = _shape(_json_schema(ours["responses"][code], doc), doc)
        if theirs and not mine:
            problems.append(f"{where}: {code} response is not an object, reference's is")
        elif theirs and mine and (missing := sorted(theirs[0] - mine[0])):
            problems.append(f"{where}: {code} response lacks properties {missing}")
    return problems


def test_shared_routes_match_reference_contract(openapi: dict[str, Any]) -> None:
    if not REFERENCE.exists():
        pytest.skip(f"reference contract not found at {REFERENCE}")
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    problems: list[str] = []
    compared = 0
    for path, item in openapi["paths"].items():
        ref_item = reference["paths"].get(path, {})
        for method, operation in item.items():
            if method in HTTP_METHODS and method in ref_item:
                compared += 1
                where = f"{method.upper()} {path}"
                problems += _compare_operation(
                    where, operation, openapi, ref_item[method], reference
                )
    assert compared, "no route of ours exists in the reference; is the prefix right?"
    assert not problems, "contract mismatches with the original MailCue:\n" + "\n".join(problems)


# --- the Postman converter ---------------------------------------------------------------

TOY_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Toy", "version": "1"},
    "paths": {
        "/things/{thing_id}": {
            "put": {
                "tags": ["Things"],
                "summary": "Put Thing",
                "operationId": "put_thing",
                "security": [{"APIKeyHeader": []}],
                "parameters": [
                    {
                        "name": "thing_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {
                        "name": "folder",
                        "in": "query",
                        "schema": {"type": "string", "default": "INBOX"},
                    },
                ],
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                    }
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/ping": {"get": {"summary": "Ping", "responses": {"200": {"description": "ok"}}}},
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "email": {"type": "string", "format": "email"},
                    "size": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                },
            },
            "Tag": {"type": "object", "properties": {"label": {"type": "string"}}},
        }
    },
}


def test_postman_request_from_toy_spec() -> None:
    collection = openapi_to_postman.build_collection(TOY_OPENAPI)
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    assert {v["key"] for v in collection["variable"]} == {"baseUrl", "apiKey"}
    assert [folder["name"] for folder in collection["item"]] == ["Things", "Other"]
    request = collection["item"][0]["item"][0]["request"]
    assert request["method"] == "PUT"
    assert request["url"]["raw"] == "{{baseUrl}}/things/:thing_id"
    assert request["url"]["variable"] == [{"key": "thing_id", "value": "0", "description": ""}]
    assert request["url"]["query"][0] == {
        "key": "folder",
        "value": "INBOX",
        "description": "",
        "disabled": True,
    }
    assert "auth" not in request  # inherits the collection's X-API-Key
    assert json.loads(request["body"]["raw"]) == {
        "name": "string",
        "email": "user@example.com",
        "size": None,
        "tags": [{"label": "string"}],
        "kind": "a",
    }
    ping = collection["item"][1]["item"][0]["request"]
    assert ping["auth"] == {"type": "noauth"}
