"""Pydantic models of the UI server's JSON responses (they also document the API at ``/docs``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MethodInfo(BaseModel):
    """One registered inpainter."""

    name: str = Field(description="registry name, the value of the `method` form field")
    kind: Literal["classical", "learned"] = Field(description="learned models first in listings")
    description: str = Field(description="first line of the method's docstring")


class MethodsResponse(BaseModel):
    """Every registered inpainter, learned ones first, then classical ones; each group sorted by name."""

    methods: list[MethodInfo]
    default: str = Field(description="the method the page selects first")


class Limits(BaseModel):
    """What the server refuses."""

    max_upload_bytes: int = Field(description="whole request body (image + mask); larger requests get 413")
    max_pixels: int = Field(description="width x height of the image or the mask; larger ones get 422")
    queue_size: int = Field(description="requests that may wait per method while one runs; more get 503")


class HealthResponse(BaseModel):
    """Liveness and the limits in force."""

    status: Literal["ok"] = "ok"
    limits: Limits


class ErrorResponse(BaseModel):
    """Every error the API answers itself (4xx/5xx) has this shape."""

    detail: str = Field(description="what went wrong, naming the offending value")
    close_matches: list[str] | None = Field(default=None, description="for an unknown method: similar names")
