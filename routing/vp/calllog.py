"""One JSON log line per leg of a call: req-in, req-out, resp-in, resp-out, error.

Each line carries the correlation id, sender (HSA-id), receiver (logical address), contract,
duration, HTTP status and VP code: identifiers of systems and counties only. Message bodies and
anything from inside them (personnummer) are never logged.

Lines are buffered and written together at most ``FLUSH_AFTER`` seconds later (or at 64 KiB),
not one write per line: four to five lines per call written one by one cost more CPU than the
rest of the platform's own work (measured, docs/performance.md). A crash can lose the last
fraction of a second of call log; ``close()`` at shutdown writes what is left.

With a ``message_log`` (``routing.msglog.MessageLog``, ``--message-log``) every leg is also
appended there, written at once (it is the evidence, not a diagnostic). If that write fails
(disk full) the leg raises ``VpError`` VP012: the platform fails closed, no call passes
unrecorded (see docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from json.encoder import encode_basestring as _quote  # json's own escaper (in C)
from typing import Protocol, TextIO

from routing.vp.faults import VpError

FLUSH_AFTER = 0.05  # seconds
_MAX_BUFFER = 64 * 1024
log = logging.getLogger("routing.vp")


class LegSink(Protocol):
    """What the call log needs of a message log (``routing.msglog.MessageLog``)."""

    def leg(self, event: str, correlation_id: str, **fields: object) -> None: ...
    def close(self) -> None: ...


class CallLog:
    def __init__(self, stream: TextIO | None = None,
                 message_log: LegSink | None = None) -> None:
        self.stream = stream
        self.message_log = message_log
        self._lines: list[str] = []
        self._size = 0
        self._flush_scheduled = False
        self._message_log_failing = False

    @property
    def enabled(self) -> bool:
        return self.stream is not None

    def leg(self, event: str, correlation_id: str, **fields: object) -> None:
        """One leg: buffered for the stream; appended to the message log at once (``VpError``
        VP012 when that fails, after the stream's line is buffered)."""
        if self.stream is not None:
            self._buffer(event, correlation_id, fields)
        if self.message_log is not None:
            self._record(event, correlation_id, fields)

    def _record(self, event: str, correlation_id: str, fields: dict[str, object]) -> None:
        assert self.message_log is not None
        try:
            self.message_log.leg(event, correlation_id, **fields)
        except (OSError, ValueError) as exc:  # ValueError: closed under us (shutdown)
            if not self._message_log_failing:  # once per outage, not once per call
                log.error("message log not writable, refusing calls until it is: %s", exc)
                self._message_log_failing = True
            raise VpError("VP012", "the platform cannot record the call in its message "
                                   "log; the call is refused") from None
        if self._message_log_failing:
            log.warning("message log writable again")
            self._message_log_failing = False

    def _buffer(self, event: str, correlation_id: str, fields: dict[str, object]) -> None:
        # formatted by hand: json.dumps of a dict costs several times more, five times a call
        parts = [f'{{"ts":{time.time():.3f},"event":"{event}","correlation_id":',
                 _quote(correlation_id)]
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, str):
                parts.append(f',"{key}":{_quote(value)}')
            elif isinstance(value, bool):
                parts.append(f',"{key}":{"true" if value else "false"}')
            else:  # int or float
                parts.append(f',"{key}":{value}')
        parts.append("}")
        line = "".join(parts)
        self._lines.append(line)
        self._size += len(line)
        if self._size >= _MAX_BUFFER:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_AFTER, self.flush)
            except RuntimeError:  # no event loop (a direct call): write now
                self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._lines or self.stream is None:
            return
        lines, self._lines, self._size = self._lines, [], 0
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken log stream must not fail calls

    def close(self) -> None:
        """Write what is buffered; close the message log (its closing signature)."""
        self.flush()
        if self.message_log is not None:
            try:
                self.message_log.close()
            except OSError as exc:
                log.error("message log: no closing signature written: %s", exc)


def to_stderr() -> CallLog:
    return CallLog(sys.stderr)
