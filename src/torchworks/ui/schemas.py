"""Pydantic models of the UI server's JSON responses (they also document the API at ``/docs``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MethodInfo(BaseModel):
    """One registered inpainter."""

    name: str = Field(description="registry name, the value of the `method` form field")
    kind: Literal["classical", "learned", "baseline"] = Field(description="registry kind; baseline = mean colour "
                                                               "or smooth fill, for comparison")
    description: str = Field(description="first line of the method's docstring")
    pluralistic: bool = Field(default=False, description="the method draws its fill with a seed: one hole has "
                              "several completions (POST /api/variations); the others give one")


class MethodsResponse(BaseModel):
    """Every registered inpainter, the best for natural photos first (see :mod:`torchworks.ui.ranking`)."""

    methods: list[MethodInfo]
    default: str = Field(description="the method the page selects first: the first of `methods`")
    max_samples: int = Field(description="most variations one POST /api/variations may ask for")


class Limits(BaseModel):
    """What the server refuses."""

    max_upload_bytes: int = Field(description="whole request body (image + mask); larger requests get 413")
    max_pixels: int = Field(description="width x height of the image or the mask; larger ones get 422")
    queue_size: int = Field(description="requests that may wait beyond the running ones; more get 503")
    max_jobs: int = Field(description="inpainting calls that run at once, whatever the method")
    max_busy_pixels: int = Field(description="width x height summed over the running calls")


class Load(BaseModel):
    """What the server is doing now."""

    running: int = Field(description="inpainting calls running")
    waiting: int = Field(description="requests queued for the job budget")
    busy_pixels: int = Field(description="width x height summed over the running calls")


class HealthResponse(BaseModel):
    """Liveness and the limits in force."""

    status: Literal["ok"] = "ok"
    device: str = Field(description="where learned models run (cpu, cuda, cuda:N, mps)")
    limits: Limits
    load: Load


class ErrorResponse(BaseModel):
    """Every error the API answers itself (4xx/5xx) has this shape."""

    detail: str = Field(description="what went wrong, naming the offending value")
    close_matches: list[str] | None = Field(default=None, description="for an unknown method: similar names")
