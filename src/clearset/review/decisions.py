"""The review's decision log: ``WS/review/decisions.jsonl``, one JSON object per line, only ever appended.

A decision is acknowledged only after its line is written and fsynced, so a crash (even ``kill -9``) loses
nothing that was acknowledged; a line torn by a crash mid-write was never acknowledged and is skipped when
the log is read back. Writers hold an exclusive ``flock`` on ``decisions.lock`` while they catch up with
the file and append, so two browser tabs, or two servers on one workspace, never interleave lines, and
``expect`` (the decision a client last saw on that finding) turns a lost race into a conflict instead of a
silent overwrite: of two concurrent decisions on one finding exactly one is recorded as the winner.

Each line: ``seq`` (1, 2, ...), ``finding`` (e.g. ``label:17``), ``action`` (relabel, keep, drop, ambiguous,
undo), ``index`` (the image), ``old`` and ``new`` label, ``undoes`` (for undo: the seq reverted), ``time``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import ParameterError

ACTIONS = ("relabel", "keep", "drop", "ambiguous")


class Conflict(ParameterError):
    """Another client decided this finding after the state this request was based on."""

    def __init__(self, message: str, current: dict | None):
        super().__init__(message)
        self.current = current


@dataclass
class DecisionLog:
    path: Path
    _offset: int = 0
    _records: list[dict] = field(default_factory=list)
    _current: dict[str, dict] = field(default_factory=dict)  # finding -> its effective decision
    _undone: set[int] = field(default_factory=set)

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    # -- reading -----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read what was appended since the last read (by this process or another)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        if not data:
            return
        end = data.rfind(b"\n") + 1  # a last line without its newline is still being written, or torn
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # a line torn by a crash: it was never acknowledged
                continue
            if isinstance(rec, dict) and isinstance(rec.get("seq"), int):
                self._apply(rec)
        self._offset += end

    def _apply(self, rec: dict) -> None:
        self._records.append(rec)
        if rec["action"] == "undo":
            self._undone.add(int(rec["undoes"]))
            finding = rec["finding"]
            earlier = [r for r in self._records if r["finding"] == finding and r["action"] != "undo"
                       and r["seq"] not in self._undone]
            if earlier:
                self._current[finding] = earlier[-1]
            else:
                self._current.pop(finding, None)
        else:
            self._current[rec["finding"]] = rec

    def current(self, finding: str) -> dict | None:
        return self._current.get(finding)

    def effective(self) -> list[dict]:
        """Every decision in force (not undone, not replaced by a later one on its finding), oldest first."""
        return sorted(self._current.values(), key=lambda r: r["seq"])

    def records(self) -> list[dict]:
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    # -- writing -----------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.refresh()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, recs: list[dict]) -> None:
        payload = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in recs)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size > self._offset:  # a torn last line from a crash: start ours on a fresh line
                payload = b"\n" + payload
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._offset = os.path.getsize(self.path)
        for r in recs:
            self._apply(r)

    def decide(self, items: list[dict[str, Any]]) -> list[dict]:
        """Record decisions atomically: all of ``items`` or none. Each item: finding, action, index, old,
        new, and optionally ``expect`` (the seq of the finding's decision the client saw, 0 for none)."""
        with self._locked():
            seq = self._records[-1]["seq"] if self._records else 0
            now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            out = []
            for item in items:
                if item["action"] not in ACTIONS:
                    raise ParameterError(f"action {item['action']!r} is not one of {', '.join(ACTIONS)}")
                if "expect" in item and item["expect"] is not None:
                    cur = self._current.get(item["finding"])
                    if int(item["expect"]) != (cur["seq"] if cur else 0):
                        raise Conflict(f"{item['finding']}: decided meanwhile by another client "
                                       f"(decision {cur['seq'] if cur else 0}); reload to see it", cur)
                seq += 1
                out.append({"seq": seq, "finding": item["finding"], "action": item["action"],
                            "index": int(item["index"]), "old": item.get("old"), "new": item.get("new"),
                            "time": now})
            if out:
                self._append(out)
            return out

    def undo(self, finding: str | None = None) -> dict | None:
        """Revert the latest decision in force (on ``finding`` if given). Returns the undo record, or None
        when there is nothing to undo."""
        with self._locked():
            live = [r for r in self._records if r["action"] != "undo" and r["seq"] not in self._undone
                    and (finding is None or r["finding"] == finding)]
            if not live:
                return None
            target = live[-1]
            rec = {"seq": self._records[-1]["seq"] + 1, "finding": target["finding"], "action": "undo",
                   "index": target["index"], "undoes": target["seq"], "old": target.get("new"),
                   "new": target.get("old"), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self._append([rec])
            return rec


def open_log(review_dir: Path) -> DecisionLog:
    log = DecisionLog(review_dir / "decisions.jsonl")
    log.refresh()
    return log
