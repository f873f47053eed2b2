"""Progress of long work: one mechanism for every door (CLI bars, service job events, the web UI).

Library code reports what it is doing through :func:`task`; it never prints bars itself::

    with progress.task("training", total=steps, unit="step") as t:
        for step in ...:
            ...
            t.update(1, message=f"loss {loss:.4f}")

Where the events go is decided by the caller, per thread/context, with :func:`reporting`:

* the CLI and plain Python calls get :class:`ConsoleSink` (tqdm bars on a terminal, one line per
  10% in a log file, nothing with ``quiet=True``);
* the job service installs its own sink, which stores each event with the job and raises
  :class:`Cancelled` from ``update`` when the job was cancelled, so every verb stops at its next
  step without knowing about the service.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator, TextIO

from .errors import FacechainError


@dataclass(frozen=True)
class ProgressEvent:
    """One step of one task. ``total`` None: unknown length (e.g. loading a model)."""

    task: str
    done: float
    total: float | None
    unit: str = "it"
    message: str = ""
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        if self.finished:
            return 1.0
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    def to_json(self) -> dict:
        return {"task": self.task, "done": self.done, "total": self.total, "unit": self.unit,
                "message": self.message, "finished": self.finished, "fraction": self.fraction}


ProgressSink = Callable[[ProgressEvent], None]


class Cancelled(FacechainError):
    """The work was cancelled (a service job was cancelled); raised at the next progress step."""

    exit_code = 130


_SINK: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar("facechain_progress_sink", default=None)


def current_sink() -> ProgressSink | None:
    return _SINK.get()


@contextlib.contextmanager
def reporting(quiet: bool = False, sink: ProgressSink | None = None) -> Iterator[ProgressSink | None]:
    """Route the progress events of this context to ``sink``.

    Without ``sink``: keep a sink an outer caller installed (the service), else show bars on
    stderr unless ``quiet``. Every public verb wraps its work in this.
    """
    outer = _SINK.get()
    if sink is None:
        sink = outer if outer is not None else (None if quiet else ConsoleSink())
    elif outer is not None and outer is not sink:
        sink = _chain(outer, sink)  # an outer sink (the service) keeps seeing everything
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)
        close = getattr(sink, "close", None)
        if close is not None and sink is not outer:
            close()


def _chain(*sinks: ProgressSink) -> ProgressSink:
    def both(event: ProgressEvent) -> None:
        for s in sinks:
            s(event)

    return both


class Task:
    """A unit of long work with a known (or unknown) length; see :func:`task`."""

    def __init__(self, name: str, total: float | None, unit: str, sink: ProgressSink | None):
        self.name, self.total, self.unit, self._sink = name, total, unit, sink
        self.done = 0.0
        self.message = ""
        self._emit()

    def update(self, n: float = 1, message: str | None = None) -> None:
        self.done += n
        if message is not None:
            self.message = message
        self._emit()

    def set_total(self, total: float | None) -> None:
        self.total = total
        self._emit()

    def close(self) -> None:
        if self._sink is not None:
            self._sink(ProgressEvent(self.name, self.done, self.total, self.unit, self.message, finished=True))
            self._sink = None

    def _emit(self) -> None:
        if self._sink is not None:
            self._sink(ProgressEvent(self.name, self.done, self.total, self.unit, self.message))

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # a failed task is not "finished": drop it without a final event
            self._sink = None


def task(name: str, total: float | None = None, unit: str = "it") -> Task:
    """Start reporting task ``name`` to the current sink (a no-op when there is none)."""
    return Task(name, total, unit, _SINK.get())


def say(message: str) -> None:
    """A one-off status line (``loading base model ...``): an event of a zero-length task."""
    sink = _SINK.get()
    if sink is not None:
        sink(ProgressEvent(message, 0, None, "", message, finished=True))


class ConsoleSink:
    """Progress on stderr: tqdm bars on a terminal; in a log (not a tty), one line per 10% and per message."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bars: dict[str, object] = {}
        self._logged: dict[str, int] = {}
        self._t0: dict[str, float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if event.total is None and event.finished and event.done == 0:
            self._line(event.message or event.task)
            return
        if self.tty:
            self._bar(event)
        else:
            self._log(event)

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _bar(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(event.task)
        if bar is None:
            bar = tqdm(total=event.total, desc=event.task, unit=event.unit, file=self.stream, leave=False,
                       dynamic_ncols=True)
            self._bars[event.task] = bar
        if event.total != bar.total:
            bar.total = event.total
        bar.n = event.done
        if event.message:
            bar.set_postfix_str(event.message, refresh=False)
        bar.refresh()
        if event.finished:
            bar.close()
            del self._bars[event.task]

    def _log(self, event: ProgressEvent) -> None:
        self._t0.setdefault(event.task, time.monotonic())
        frac = event.fraction
        tenth = -1 if frac is None else int(frac * 10)
        first = event.task not in self._logged
        already_done = event.finished and self._logged.get(event.task) == 10
        if already_done or (not first and not event.finished and tenth <= self._logged[event.task]):
            if event.finished:
                self._logged.pop(event.task, None)
                self._t0.pop(event.task, None)
            return
        self._logged[event.task] = tenth
        total = "" if event.total is None else f"/{event.total:g}"
        pct = "" if frac is None else f" {frac * 100:3.0f}%"
        msg = f" {event.message}" if event.message else ""
        secs = time.monotonic() - self._t0[event.task]
        self._line(f"{event.task}:{pct} {event.done:g}{total} {event.unit} ({secs:.0f} s){msg}")
        if event.finished:
            self._logged.pop(event.task, None)
            self._t0.pop(event.task, None)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()  # type: ignore[attr-defined]
        self._bars.clear()


class RecordingSink:
    """Keeps every event (tests, and callers who want to inspect progress afterwards)."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(e.task for e in self.events))
