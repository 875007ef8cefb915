"""A WeChat push's XML (plain, or decrypted in AES mode): read without trusting it, and the message it carries.

parse_xml refuses any DOCTYPE (and so every entity declaration), anything that is not well-formed
UTF-8, and documents deeper or larger than WeChat ever sends; incoming_from_xml refuses a push
without its required fields and does not believe a CreateTime far from the arrival. Every refusal is
a Refused with the HTTP status the callback answers (bot.inbound.callback).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from xml.parsers import expat

from bot.config import CallbackConfig
from bot.inbound.events import job_id
from bot.inbound.store import Incoming

MESSAGE_TYPES = ("text", "image", "voice", "video", "shortvideo", "location", "link")
MAX_DEPTH = 6
MAX_ELEMENTS = 400
MAX_FIELD_CHARS = 64  # ids, types, timestamps


class Refused(Exception):
    """A request we answer with `status` and log; nothing is stored."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def parse_xml(data: bytes) -> dict[str, Any]:
    """WeChat's flat <xml> document as a dict; child elements become nested dicts (repeated: lists).

    Refuses any DOCTYPE (and so every entity declaration: billion laughs, external entities/XXE),
    anything that is not well-formed UTF-8, and documents deeper or larger than WeChat ever sends.
    """
    parser = expat.ParserCreate("UTF-8")  # overrides a declared encoding: WeChat sends UTF-8 only

    def refuse(*_args: Any) -> None:
        raise Refused(400, "DOCTYPE and entity declarations are not accepted")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    root: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any], list[str]]] = [("", root, [])]
    count = 0

    def start(name: str, _attrs: Any) -> None:
        nonlocal count
        count += 1
        if count > MAX_ELEMENTS or len(stack) > MAX_DEPTH:
            raise Refused(400, "XML document too large or too deep")
        stack.append((name, {}, []))

    def end(_name: str) -> None:
        name, children, text = stack.pop()
        value: Any = children if children else "".join(text)
        parent = stack[-1][1]
        if name in parent:
            previous = parent[name]
            parent[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            parent[name] = value

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = lambda text: stack[-1][2].append(text)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise Refused(400, f"malformed XML: {expat.errors.messages.get(exc.code, exc.code)}") from None
    except RecursionError:
        raise Refused(400, "XML document too deep") from None
    doc = root.get("xml")
    if not isinstance(doc, dict) or len(root) != 1:
        raise Refused(400, "not a WeChat <xml> document")
    return doc


def field(doc: dict[str, Any], name: str, *, required: bool = True, limit: int | None = MAX_FIELD_CHARS) -> str:
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise Refused(400, f"missing field {name}")
        return ""
    if not isinstance(value, str):
        raise Refused(400, f"field {name} is not text")
    if limit is not None and len(value) > limit:
        raise Refused(400, f"field {name} is too long")
    return value.strip() if limit is not None else value


def received_at(create_time: str, arrived_at: datetime, cfg: CallbackConfig) -> tuple[datetime, str | None]:
    """(when the citizen sent it, the CreateTime as sent if it was not believed): a CreateTime outside
    [arrival - create_time_past_s, arrival + create_time_future_s] gives way to the arrival time."""
    seconds = int(create_time)
    low = arrived_at - timedelta(seconds=cfg.create_time_past_s)
    high = arrived_at + timedelta(seconds=cfg.create_time_future_s)
    if low.timestamp() <= seconds <= high.timestamp():
        return datetime.fromtimestamp(seconds, UTC), None
    return arrived_at, create_time


def incoming_from_xml(account_id: int, doc: dict[str, Any], raw: str, *, arrived_at: datetime,
                      cfg: CallbackConfig) -> Incoming:
    """The platform-neutral message of a WeChat push; Refused(400) when a required field is missing."""
    to_user = field(doc, "ToUserName")
    from_user = field(doc, "FromUserName")
    create_time = field(doc, "CreateTime")
    if not create_time.isdigit():
        raise Refused(400, "field CreateTime is not a number")
    when, untrusted = received_at(create_time, arrived_at, cfg)
    wire_type = field(doc, "MsgType").lower()
    common = dict(account_id=account_id, kind="wechat_message", received_at=when, untrusted_create_time=untrusted,
                  sender_id=from_user, raw=raw, own_id=to_user)
    if wire_type == "event":
        event = field(doc, "Event").lower()
        # WeChat deduplicates events by FromUserName + CreateTime; the event name keeps two
        # different events of the same second (subscribe, then a menu click) apart, the job's id two
        # jobs finishing in one second (several PUBLISHJOBFINISH from the same system sender).
        job = job_id(event, doc)
        dedupe_key = f"event:{from_user}:{create_time}:{event}" + (f":{job}" if job else "")
        return Incoming(**common, dedupe_key=dedupe_key, msg_type="event",
                        event=event, text=field(doc, "EventKey", required=False, limit=None), classify=False)
    msg_id = field(doc, "MsgId", required=wire_type in MESSAGE_TYPES)
    dedupe_key = f"msg:{msg_id}" if msg_id else f"nomsgid:{from_user}:{create_time}:{wire_type}"
    if wire_type == "text":
        text = field(doc, "Content", limit=None)
    elif wire_type == "voice":
        text = field(doc, "Recognition", required=False, limit=None)
    elif wire_type == "location":
        text = field(doc, "Label", required=False, limit=None)
    elif wire_type == "link":
        parts = (field(doc, "Title", required=False, limit=None), field(doc, "Description", required=False, limit=None))
        text = "\n".join(p for p in parts if p)
    elif wire_type in MESSAGE_TYPES:
        text = ""  # image, video: nothing to read
    else:
        return Incoming(**common, dedupe_key=dedupe_key, msg_type="unknown", classify=False)
    return Incoming(**common, dedupe_key=dedupe_key, msg_type=wire_type, text=text)
