"""OpenAPI 3 description of the flags API and OFREP, written by hand and checked by tests."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Bad JSON, unknown or missing fields, invalid values"),
    "401": _json(_ref("Error"), "Missing, unknown or revoked token"),
    "403": _json(_ref("Error"), "The token may not do this (role or token scope)"),
}
_NOT_FOUND = {"404": _json(_ref("Error"), "Unknown flag or environment")}
_CONFLICT = {"409": _json(_ref("Error"), "The flag exists already, or is archived")}
_STATE_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("StateChangeRequest")}},
}
_OFREP_ERRORS = {
    "400": _json(_ref("OfrepFailure"), "Bad request or context"),
    "401": _json(_ref("OfrepGeneralError"), "Missing or unknown token"),
    "403": _json(_ref("OfrepGeneralError"), "The token may not evaluate"),
    "500": _json(_ref("OfrepGeneralError"), "Evaluation failed"),
}
_OFREP_BODY = {"content": {"application/json": {"schema": _ref("OfrepRequest")}}}

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}

SCHEMA: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Mycelia Ops feature flags",
        "version": "1.0.0",
        "description": "Turn flags on and off (the playbook's API) and evaluate them (OFREP).",
    },
    "security": [{"BearerAuth": []}],
    "paths": {
        "/api/feature-flags": {
            "get": {
                "summary": "List flags, paginated",
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}}
                ],
                "responses": {"200": _json(_ref("FlagPage"), "A page of flags")} | _ERRORS,
            },
            "post": {
                "summary": "Create a flag (off in every environment)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("FlagCreateRequest")}},
                },
                "responses": {"201": _json(_ref("Flag"), "The new flag")} | _ERRORS | _CONFLICT,
            },
        },
        "/api/feature-flags/{name}": {
            "get": {
                "summary": "One flag with its recent history",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": _STRING}],
                "responses": {"200": _json(_ref("FlagDetail"), "The flag")} | _ERRORS | _NOT_FOUND,
            }
        },
        "/api/feature-flags/enable": {
            "post": {
                "summary": "Turn a flag on",
                "requestBody": _STATE_BODY,
                "responses": {"200": _json(_ref("StateChange"), "Done, or already on")}
                | _ERRORS
                | _NOT_FOUND
                | _CONFLICT,
            }
        },
        "/api/feature-flags/disable": {
            "post": {
                "summary": "Turn a flag off",
                "requestBody": _STATE_BODY,
                "responses": {"200": _json(_ref("StateChange"), "Done, or already off")}
                | _ERRORS
                | _NOT_FOUND,
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3 document"}},
            }
        },
        "/ofrep/v1/evaluate/flags/{key}": {
            "post": {
                "summary": "OFREP single flag evaluation",
                "parameters": [{"name": "key", "in": "path", "required": True, "schema": _STRING}],
                "requestBody": _OFREP_BODY,
                "responses": {
                    "200": _json(_ref("OfrepSuccess"), "Evaluated"),
                    "404": _json(_ref("OfrepFailure"), "FLAG_NOT_FOUND"),
                }
                | _OFREP_ERRORS,
            }
        },
        "/ofrep/v1/evaluate/flags": {
            "post": {
                "summary": "OFREP bulk evaluation",
                "parameters": [{"name": "If-None-Match", "in": "header", "schema": _STRING}],
                "requestBody": _OFREP_BODY,
                "responses": {
                    "200": {
                        **_json(_ref("OfrepBulk"), "Every live flag, evaluated"),
                        "headers": {"ETag": {"schema": _STRING}},
                    },
                    "304": {"description": "Not modified since the ETag sent"},
                }
                | _OFREP_ERRORS,
            }
        },
    },
    "components": {
        "securitySchemes": {"BearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string", "description": "What went wrong"}},
            },
            "FlagCreateRequest": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
                    "description": _STRING,
                    "tags": {"type": "array", "items": _STRING},
                },
            },
            "StateChangeRequest": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": _STRING,
                    "environment": {
                        "type": "string",
                        "description": "Environment key; FLAGS_DEFAULT_ENVIRONMENT if absent",
                    },
                    "reason": _STRING,
                },
            },
            "StateChange": {
                "type": "object",
                "required": ["changed", "name", "environment", "enabled", "version"],
                "properties": {
                    "changed": {"type": "boolean"},
                    "name": _STRING,
                    "environment": _STRING,
                    "enabled": {"type": "boolean"},
                    "version": {"type": "integer"},
                },
            },
            "FlagState": {
                "type": "object",
                "required": ["enabled", "rollout_percentage", "rules", "version", "updated_at"],
                "properties": {
                    "enabled": {"type": "boolean"},
                    "rollout_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
                    "rules": {"type": "array", "items": {"type": "object"}},
                    "version": {"type": "integer"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
            "Flag": {
                "type": "object",
                "required": [
                    "name",
                    "description",
                    "tags",
                    "owner",
                    "archived",
                    "created_at",
                    "environments",
                ],
                "properties": {
                    "name": _STRING,
                    "description": _STRING,
                    "tags": {"type": "array", "items": _STRING},
                    "owner": _NULLABLE_STRING,
                    "archived": {"type": "boolean"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "environments": {
                        "type": "object",
                        "additionalProperties": _ref("FlagState"),
                    },
                },
            },
            "FlagEvent": {
                "type": "object",
                "required": [
                    "at",
                    "environment",
                    "kind",
                    "via",
                    "actor",
                    "before",
                    "after",
                    "reason",
                ],
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "environment": _NULLABLE_STRING,
                    "kind": _STRING,
                    "via": _STRING,
                    "actor": _NULLABLE_STRING,
                    "before": {"type": "object"},
                    "after": {"type": "object"},
                    "reason": _STRING,
                },
            },
            "FlagDetail": {
                "allOf": [
                    _ref("Flag"),
                    {
                        "type": "object",
                        "required": ["history"],
                        "properties": {"history": {"type": "array", "items": _ref("FlagEvent")}},
                    },
                ]
            },
            "FlagPage": {
                "type": "object",
                "required": ["count", "page", "pages", "next", "previous", "results"],
                "properties": {
                    "count": {"type": "integer"},
                    "page": {"type": "integer"},
                    "pages": {"type": "integer"},
                    "next": _NULLABLE_STRING,
                    "previous": _NULLABLE_STRING,
                    "results": {"type": "array", "items": _ref("Flag")},
                },
            },
            "OfrepRequest": {
                "type": "object",
                "properties": {"context": {"type": "object"}},
            },
            "OfrepSuccess": {
                "type": "object",
                "required": ["key", "value", "reason", "variant", "metadata"],
                "properties": {
                    "key": _STRING,
                    "value": {"type": "boolean"},
                    "reason": {
                        "type": "string",
                        "enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"],
                    },
                    "variant": _STRING,
                    "metadata": {"type": "object"},
                },
            },
            "OfrepFailure": {
                "type": "object",
                "required": ["errorCode", "errorDetails"],
                "properties": {
                    "key": _STRING,
                    "errorCode": {
                        "type": "string",
                        "enum": [
                            "FLAG_NOT_FOUND",
                            "PARSE_ERROR",
                            "TARGETING_KEY_MISSING",
                            "INVALID_CONTEXT",
                            "GENERAL",
                        ],
                    },
                    "errorDetails": _STRING,
                },
            },
            "OfrepGeneralError": {
                "type": "object",
                "required": ["errorDetails"],
                "properties": {"errorDetails": _STRING},
            },
            "OfrepBulk": {
                "type": "object",
                "required": ["flags"],
                "properties": {
                    "flags": {
                        "type": "array",
                        "items": {"oneOf": [_ref("OfrepSuccess"), _ref("OfrepFailure")]},
                    }
                },
            },
        },
    },
}


@require_GET
def openapi_schema(request: HttpRequest) -> JsonResponse:
    # Public on purpose: it describes the API and holds no data.
    return JsonResponse(SCHEMA)
