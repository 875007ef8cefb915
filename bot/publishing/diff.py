"""What changed between the version last signed and this one (修改对比), word by word.

Pure: texts are cut into words with jieba (Chinese has no spaces) and compared with difflib; the
accounts and the time are compared as sets and values. The sign-off page shows the result.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from bot.publishing.richtext import plain_text

FIELDS = (("title", "标题"), ("byline", "作者"), ("digest", "摘要"), ("body", "正文"), ("weibo_text", "微博文案"))


@dataclass(frozen=True)
class Snapshot:
    """One version as the diff sees it (times and accounts already as officers read them)."""

    title: str
    body: str  # HTML
    digest: str
    weibo_text: str
    cover: str  # sha256 or ""
    accounts: tuple[str, ...]
    planned_at: str  # local time text or ""
    byline: str = ""  # WeChat 作者
    open_comment: bool = True  # WeChat 留言


@dataclass(frozen=True)
class FieldDiff:
    name: str
    label: str
    parts: list[tuple[str, str]]  # (op, text): op is "same" | "added" | "removed"


@dataclass(frozen=True)
class VersionDiff:
    fields: list[FieldDiff] = field(default_factory=list)
    accounts_added: list[str] = field(default_factory=list)
    accounts_removed: list[str] = field(default_factory=list)
    planned: tuple[str, str] | None = None  # (before, after) when the time changed
    cover_changed: bool = False
    comments: tuple[str, str] | None = None  # (before, after) when the comment switch changed

    @property
    def empty(self) -> bool:
        return not (self.fields or self.accounts_added or self.accounts_removed or self.planned or self.cover_changed
                    or self.comments)


def words(text: str) -> list[str]:
    import jieba  # here: `govbot post list` and the other commands that never diff stay light

    return [w for w in jieba.lcut(text, HMM=False) if w]


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Pure: the new text as runs of same / added / removed words."""
    a, b = words(old), words(new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            out.append(("removed", "".join(a[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("added", "".join(b[j1:j2])))
    return out


def compare(old: Snapshot, new: Snapshot) -> VersionDiff:
    fields = []
    for name, label in FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if name == "body":
            before, after = plain_text(before), plain_text(after)
        if before != after:
            fields.append(FieldDiff(name, label, word_diff(before, after)))
    planned = (old.planned_at or "审签后确定", new.planned_at or "审签后确定") if old.planned_at != new.planned_at else None
    switch = {True: "开启留言", False: "关闭留言"}
    comments = (switch[old.open_comment], switch[new.open_comment]) if old.open_comment != new.open_comment else None
    return VersionDiff(fields=fields, accounts_added=[a for a in new.accounts if a not in old.accounts],
                       accounts_removed=[a for a in old.accounts if a not in new.accounts], planned=planned,
                       cover_changed=old.cover != new.cover, comments=comments)
