"""What a bridge sends the session's owner through `in:{id}` (DESIGN §8 "Bridge")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

Op = Literal["attach", "detach", "audio", "flush", "stop", "keepalive", "abort", "delivered", "error", "mark"]
OPS: frozenset[str] = frozenset(Op.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One command for the owner.

    op: what to do. `attach`/`detach`: a client connection (`conn`, unique per bridge) took the session
        or went away; `audio` carries `data`; `delivered`: the bridged client has taken events up to
        `seq`; `error`: a transport error to report in the session (`code`, `message`, `fatal`).
    conn: the bridge that sent it (node id and a counter), so a detach only detaches its own attach.
    to: the owner the bridge sent it to. After a takeover the new owner applies only what was sent to
        it: what a client sent the dead owner is sent again from `audio_from_ms` on a new connection.
    reply: on `attach` and `mark` (a resume: `mark` changes nothing else), the list the owner pushes its
        answer to once it has applied every earlier message of the inbox: `session.started {resumed,
        audio_from_ms}` with the end of the audio it has received (`resume.py`).
    """

    op: Op
    conn: str = ""
    data: bytes = b""
    seq: int = 0
    code: str = ""
    message: str = ""
    fatal: bool = False
    to: str = ""
    reply: str = ""
    again: bool = False

    def fields(self) -> dict[str, bytes | str | int]:
        out: dict[str, bytes | str | int] = {"op": self.op, "conn": self.conn}
        if self.to:
            out["to"] = self.to
        if self.reply:
            out["reply"] = self.reply
        if self.data:
            out["data"] = self.data
        if self.seq:
            out["seq"] = self.seq
        if self.again:
            out["again"] = 1
        if self.code:
            out.update(code=self.code, message=self.message, fatal=int(self.fatal))
        return out

    @classmethod
    def parse(cls, fields: dict[bytes, bytes]) -> InboxMessage | None:
        """None for an entry that is not a message (never trusted to be well-formed)."""
        op = fields.get(b"op", b"").decode("ascii", "replace")
        if op not in OPS:
            return None
        try:
            return cls(op=cast(Op, op), conn=fields.get(b"conn", b"").decode("utf-8", "replace"),
                       data=fields.get(b"data", b""), seq=int(fields.get(b"seq", b"0") or 0),
                       code=fields.get(b"code", b"").decode("utf-8", "replace"),
                       message=fields.get(b"message", b"").decode("utf-8", "replace"),
                       fatal=fields.get(b"fatal", b"0") == b"1",
                       to=fields.get(b"to", b"").decode("utf-8", "replace"),
                       reply=fields.get(b"reply", b"").decode("utf-8", "replace"),
                       again=fields.get(b"again", b"0") == b"1")
        except ValueError:
            return None
