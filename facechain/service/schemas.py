"""Typed request and response bodies of the REST API (they make the OpenAPI document at ``/docs``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .jobs import Job

StateName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ErrorOut(BaseModel):
    error: str = Field(description="one line, the same message the CLI prints")


class UploadOut(BaseModel):
    id: str = Field(description="sha256 of the bytes; pass it in a job's params (e.g. photos)")
    filename: str
    format: str
    width: int
    height: int
    bytes: int


class UploadsOut(BaseModel):
    uploads: list[UploadOut]


class JobIn(BaseModel):
    kind: str = Field(description="prepare, train, train_style, generate, inpaint (GET /v1/kinds)", examples=["train"])
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="the Python keywords / CLI options of that verb",
                                   examples=[{"photos": ["<upload id>"], "name": "alice", "steps": 400}])


class JobOut(BaseModel):
    id: str
    kind: str
    params: dict[str, Any]
    state: StateName
    progress: float = Field(description="0-1, from the verb's progress events")
    message: str
    created: float = Field(description="seconds since the epoch")
    started: float | None
    finished: float | None
    attempts: int = Field(description="times it was started (more than 1 after a server restart)")
    error: str | None = Field(description="why it failed: the one line the CLI prints")
    result: dict[str, Any] | None
    files: list[str] = Field(description="names for GET /v1/jobs/{id}/files/{name}")
    cancel_requested: bool
    after: list[str] = Field(description="jobs that must succeed before this one runs")

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        data = job.to_json()
        if data["result"] is not None:  # server-side details (folders) stay on the server
            data["result"] = {k: v for k, v in data["result"].items() if not k.startswith("_")}
        return cls(**data)


class JobsOut(BaseModel):
    jobs: list[JobOut]


class KindOut(BaseModel):
    name: str
    device: Literal["gpu", "cpu"]
    description: str
    required: list[str]
    params: dict[str, str] = Field(description="param -> type")


class KindsOut(BaseModel):
    kinds: list[KindOut]


class IdentitiesOut(BaseModel):
    identities: list[dict[str, Any]]


class StylesOut(BaseModel):
    styles: list[dict[str, Any]]


class ModelsOut(BaseModel):
    models: list[dict[str, Any]]


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    jobs: dict[str, int]
    workers: list[dict[str, Any]]
    auth: bool
