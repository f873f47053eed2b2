"""Every node of a cluster must see the same ``FACECHAIN_HOME``: checked with a marker file.

Jobs pass files, not bytes: uploads, checkpoints, identities and portraits live under
``FACECHAIN_HOME`` and a job's result names them by path. A node that sees another folder at
that path (the default ``~/.cache/facechain`` is on each node's own disk) would train into a
folder nobody else reads, so the service checks before it runs anything: it writes a fresh
random token to ``service/cluster/marker.json``, a task on each node reads it back and writes a
reply beside it, and the service reads every reply. A node that fails either way is named in
the error and the service refuses to start. Workers check the same marker when they start, which
covers nodes that join later.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import FacechainError


class SharedStorageError(FacechainError):
    """A node does not see the service's ``FACECHAIN_HOME``."""


@dataclass(frozen=True)
class Marker:
    path: Path
    token: str

    def to_json(self) -> dict[str, str]:
        return {"path": str(self.path), "token": self.token}

    @classmethod
    def from_json(cls, d: dict[str, str]) -> "Marker":
        return cls(Path(d["path"]), d["token"])


def write_marker(service_root: Path) -> Marker:
    """A new random token in ``<service root>/cluster/marker.json``; old node replies are removed."""
    folder = Path(service_root) / "cluster"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("reply-*.json"):
        stale.unlink(missing_ok=True)
    marker = Marker(folder / "marker.json", secrets.token_hex(16))
    atomic_write_text(marker.path, json.dumps({"token": marker.token, "host": socket.gethostname()}))
    return marker


def reply_path(marker: Marker, node_id: str) -> Path:
    return marker.path.parent / f"reply-{node_id}.json"


def probe(marker: Marker, node_id: str) -> dict[str, Any]:
    """Run on a node: does it read the marker's token at the same path, and can it write beside it?"""
    from .. import __version__

    found: dict[str, Any] = {"node_id": node_id, "host": socket.gethostname(), "version": __version__,
                             "home": os.environ.get("FACECHAIN_HOME")}
    problem = check_marker(marker)
    if problem:
        return {**found, "ok": False, "reason": problem}
    try:
        atomic_write_text(reply_path(marker, node_id), json.dumps({"token": marker.token, "host": found["host"]}))
    except OSError as e:
        return {**found, "ok": False, "reason": f"cannot write beside {marker.path} ({e.strerror or e})"}
    return {**found, "ok": True, "reason": ""}


def verify(marker: Marker, nodes: list[dict[str, Any]], results: dict[str, dict[str, Any] | BaseException]) -> None:
    """Raise :class:`SharedStorageError` naming each node that does not share the folder.

    ``nodes`` are ``{"node_id", "ip"}`` rows; ``results`` maps a node id to its probe's answer or the
    exception its task raised (no facechain there, node lost, timeout).
    """
    bad = []
    for node in nodes:
        node_id, ip = node["node_id"], node.get("ip", "?")
        answer = results.get(node_id)
        if answer is None:
            why = "its check did not run"
        elif isinstance(answer, BaseException):
            why = f"its check failed: {' '.join(str(answer).split())[:200]}"
        elif not answer.get("ok"):
            why = answer.get("reason") or "check failed"
        else:
            try:
                back = json.loads(reply_path(marker, node_id).read_text())
                why = "" if back.get("token") == marker.token else "its reply holds another token"
            except (OSError, ValueError):
                why = "its reply is not visible here: it writes to another folder"
        if why:
            host = answer.get("host") if isinstance(answer, dict) else None
            bad.append(f"node {ip}{f' ({host})' if host else ''} [{node_id[:12]}]: {why}")
    if bad:
        raise SharedStorageError(
            f"every Ray node must see this service's folder {marker.path.parent.parent} (FACECHAIN_HOME) at the same "
            "path, on a shared filesystem; "
            + "; ".join(bad) + ". Mount it at the same path on every node (or set FACECHAIN_HOME to a shared folder)")


def check_marker(marker: Marker) -> str | None:
    """In a worker: None if the marker is visible with its token, else why not (one line)."""
    try:
        seen = json.loads(marker.path.read_text())
    except (OSError, ValueError) as e:
        return f"cannot read {marker.path} ({type(e).__name__})"
    return None if seen.get("token") == marker.token else f"{marker.path} holds another token: another folder at that path"
