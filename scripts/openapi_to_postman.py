"""Turn ``openapi.json`` into a Postman v2.1 collection (``postman_collection.json``).

A pure JSON-to-JSON step (no app import), so it is the second link of the chain
``export_openapi.py -> openapi_to_postman.py`` (STYLE.md rule 19). The output is
deterministic: no random ``_postman_id``, folders in the order their tags first
appear, requests in path order, and body examples derived only from the
schemas (``example``/``default``/``enum``/type placeholders).

Usage::

    python scripts/openapi_to_postman.py            # openapi.json -> postman_collection.json
    python scripts/openapi_to_postman.py --check    # exit 1 if the collection is stale
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spec_files import REPO_ROOT, render_json, write_or_check

DEFAULT_INPUT = REPO_ROOT / "openapi.json"
DEFAULT_OUTPUT = REPO_ROOT / "postman_collection.json"
SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
BASE_URL = "http://localhost:8088"
REGENERATE = "python scripts/openapi_to_postman.py"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
UNTAGGED = "Other"
MAX_DEPTH = 6

AUTH_NOTE = (
    "Authentication: every request inherits the collection's API key auth, which sends "
    "`X-API-Key: {{apiKey}}`; set the `apiKey` variable to an `mc_...` key. To use a JWT "
    "instead, call *Login*, then set the collection's Authorization to *Bearer Token* with the "
    "`access_token` from the response (header `Authorization: Bearer <token>`)."
)

_STRING_FORMATS = {
    "email": "user@example.com",
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "uri": "https://example.com",
    "binary": "",
}

JsonObject = dict[str, Any]


def resolve(schema: Any, openapi: JsonObject) -> JsonObject:
    """Follow local ``$ref`` pointers (``#/components/...``) until a plain schema remains."""
    seen: set[str] = set()
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen or not ref.startswith("#/"):
            return {}
        seen.add(ref)
        target: Any = openapi
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
        schema = target
    return schema if isinstance(schema, dict) else {}


def _non_null(options: list[Any], openapi: JsonObject) -> list[JsonObject]:
    resolved = [resolve(option, openapi) for option in options]
    return [option for option in resolved if option.get("type") != "null"]


def example_for(schema: Any, openapi: JsonObject, depth: int = 0) -> Any:
    """A small, deterministic example value for a JSON schema.

    Prefers the schema's own ``example``/``examples``/``default``/``const``/``enum``;
    otherwise takes the first non-null ``anyOf``/``oneOf`` branch, merges ``allOf``,
    fills every object property and gives arrays one item.
    """
    if depth > MAX_DEPTH:
        return None
    # OpenAPI 3.1 allows siblings of "$ref" (a property's own default or example): they win.
    siblings = {k: v for k, v in schema.items() if k != "$ref"} if isinstance(schema, dict) else {}
    schema = {**resolve(schema, openapi), **siblings}
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = _non_null(schema[key], openapi)
            return example_for(branches[0], openapi, depth + 1) if branches else None
    if "allOf" in schema:
        merged: JsonObject = {}
        for part in schema["allOf"]:
            value = example_for(part, openapi, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: example_for(prop, openapi, depth + 1) for name, prop in properties.items()}
    if kind == "array":
        return [example_for(schema.get("items", {}), openapi, depth + 1)]
    if kind == "string":
        return _STRING_FORMATS.get(schema.get("format", ""), "string")
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _parameters(operation: JsonObject, path_item: JsonObject, openapi: JsonObject) -> list[Any]:
    """Path-level parameters first, overridden by operation-level ones of the same name."""
    merged: dict[tuple[str, str], JsonObject] = {}
    for raw in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
        param = resolve(raw, openapi)
        merged[(param.get("in", ""), param.get("name", ""))] = param
    return list(merged.values())


def _url(path: str, params: list[JsonObject], openapi: JsonObject) -> JsonObject:
    segments = [
        f":{segment[1:-1]}" if segment.startswith("{") and segment.endswith("}") else segment
        for segment in path.strip("/").split("/")
    ]
    url: JsonObject = {
        "raw": "{{baseUrl}}/" + "/".join(segments),
        "host": ["{{baseUrl}}"],
        "path": segments,
    }
    query = [
        {
            "key": param["name"],
            "value": _text(example_for(param.get("schema", {}), openapi)),
            "description": param.get("description", ""),
            "disabled": True,
        }
        for param in params
        if param.get("in") == "query"
    ]
    if query:
        url["query"] = query
    variables = [
        {
            "key": param["name"],
            "value": _text(example_for(param.get("schema", {}), openapi)),
            "description": param.get("description", ""),
        }
        for param in params
        if param.get("in") == "path"
    ]
    if variables:
        url["variable"] = variables
    return url


def _body(operation: JsonObject, openapi: JsonObject) -> tuple[JsonObject | None, str | None]:
    """The Postman body and its Content-Type for the operation's first media type."""
    content = resolve(operation.get("requestBody", {}), openapi).get("content", {})
    if not content:
        return None, None
    media_type, media = next(iter(content.items()))
    example = example_for(media.get("schema", {}), openapi)
    if media_type == "application/json" or media_type.endswith("+json"):
        raw = json.dumps(example, indent=2, ensure_ascii=False)
        return {"mode": "raw", "raw": raw, "options": {"raw": {"language": "json"}}}, media_type
    schema = resolve(media.get("schema", {}), openapi)
    fields = example if isinstance(example, dict) else {}
    if media_type == "multipart/form-data":
        entries = []
        for name, value in fields.items():
            prop = resolve(schema.get("properties", {}).get(name, {}), openapi)
            if prop.get("format") == "binary" or prop.get("contentMediaType"):
                entries.append({"key": name, "type": "file", "src": []})
            else:
                entries.append({"key": name, "value": _text(value), "type": "text"})
        return {"mode": "formdata", "formdata": entries}, None  # Postman sets the boundary
    if media_type == "application/x-www-form-urlencoded":
        pairs = [{"key": name, "value": _text(value)} for name, value in fields.items()]
        return {"mode": "urlencoded", "urlencoded": pairs}, media_type
    return {"mode": "raw", "raw": _text(example) if example is not None else ""}, media_type


def _request_item(
    path: str, method: str, operation: JsonObject, path_item: JsonObject, openapi: JsonObject
) -> JsonObject:
    params = _parameters(operation, path_item, openapi)
    headers = [
        {
            "key": param["name"],
            "value": _text(example_for(param.get("schema", {}), openapi)),
            "description": param.get("description", ""),
            "disabled": True,
        }
        for param in params
        if param.get("in") == "header"
    ]
    body, content_type = _body(operation, openapi)
    if content_type:
        headers.insert(0, {"key": "Content-Type", "value": content_type})
    request: JsonObject = {
        "method": method.upper(),
        "header": headers,
        "url": _url(path, params, openapi),
    }
    if body is not None:
        request["body"] = body
    description = operation.get("description") or operation.get("summary") or ""
    if description:
        request["description"] = description
    if not operation.get("security", openapi.get("security")):
        request["auth"] = {"type": "noauth"}
    return {
        "name": operation.get("summary") or operation.get("operationId") or f"{method} {path}",
        "request": request,
        "response": [],
    }


def build_collection(openapi: JsonObject) -> JsonObject:
    """Build a Postman v2.1 collection with one folder per tag, one request per operation.

    Args:
        openapi: an OpenAPI 3.x document (as produced by ``export_openapi.py``).

    Returns:
        The collection as a JSON-ready dict.
    """
    folders: dict[str, list[JsonObject]] = {tag["name"]: [] for tag in openapi.get("tags", [])}
    for path, path_item in openapi.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            tag = (operation.get("tags") or [UNTAGGED])[0]
            item = _request_item(path, method, operation, path_item, openapi)
            folders.setdefault(tag, []).append(item)
    info = openapi.get("info", {})
    description = "\n\n".join(part for part in (info.get("description", ""), AUTH_NOTE) if part)
    return {
        "info": {
            "name": info.get("title", "API"),
            "description": description,
            "version": info.get("version", ""),
            "schema": SCHEMA_URL,
        },
        "auth": {
            "type": "apikey",
            "apikey": [
                {"key": "key", "value": "X-API-Key", "type": "string"},
                {"key": "value", "value": "{{apiKey}}", "type": "string"},
                {"key": "in", "value": "header", "type": "string"},
            ],
        },
        "variable": [
            {"key": "baseUrl", "value": BASE_URL, "type": "string"},
            {"key": "apiKey", "value": "", "type": "string"},
        ],
        "item": [{"name": name, "item": items} for name, items in folders.items() if items],
    }


def render(document: Any) -> str:
    """The exact text written to disk."""
    return render_json(document)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Convert openapi.json to a Postman collection.")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="OpenAPI JSON file")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="collection file")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the file is stale"
    )
    args = parser.parse_args(argv)
    openapi = json.loads(args.input.read_text(encoding="utf-8"))
    regenerate = REGENERATE
    if args.input != DEFAULT_INPUT or args.output != DEFAULT_OUTPUT:
        regenerate += f" --input {args.input} --output {args.output}"
    text = render(build_collection(openapi))
    return write_or_check(args.output, text, check=args.check, regenerate=regenerate)


if __name__ == "__main__":
    sys.exit(main())
