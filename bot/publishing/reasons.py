"""Why a publication failed, in the officers' words, with what to do (发布失败原因与处理办法).

`explain` is pure: it reads the error text the scheduler stored (connector errors carry the platform's
code, bot/connectors/*.py) and answers a Chinese reason and the next step. Unknown errors get a
general answer; the original text stays in the publication's record for the IT office.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    text: str  # 原因
    advice: str  # 处理办法


# (pattern on the stored error, reason, advice); the first match wins.
_RULES: tuple[tuple[str, str, str], ...] = (
    (r"^missed", "到了发布时间时系统未在运行，稿件没有发出。", "确认内容仍然适用后，点“重新发布”或改期发布。"),
    (r"not signed for", "该账号不在审签通过的发布账号中，系统拒绝发布。", "如需发布到该账号，请修改发布账号后重新送审。"),
    (r"was edited after it was scheduled", "排期后稿件又被修改，原排期已取消。", "请将新版本送审，审签通过后再排期。"),
    (r"pre-publish checks failed", "发布前复查未通过（敏感词、错别字或平台限制）。", "按稿件页的检查结果修改后重新送审。"),
    (r"publish_status 4|content audit", "公众号平台审核未通过。", "检查标题、正文和图片是否含有违规内容，修改后重新送审。"),
    (r"publish_status 2", "公众号原创声明失败。", "取消原创声明或核实原创性后，点“重新发布”。"),
    (r"publish_status [56]", "文章发布后被删除或被平台封禁。", "登录公众平台查看通知，按平台要求处理。"),
    (r"error 45009|quota exhausted", "公众号今日接口调用次数已用完。", "明天再点“重新发布”，或改期到明天。"),
    (r"error (40001|40014|42001|40164)|invalid credential|IP", "公众号接口凭据无效或服务器 IP 未加入白名单。",
     "请信息中心核对 AppSecret 和 IP 白名单后，点“重新发布”。"),
    (r"error (21301|21314|21315|21316|21317|21319|21327|21332|21501)", "微博授权已失效。",
     "请信息中心重新授权微博账号后，点“重新发布”。"),
    (r"error 20012|too long", "微博文案超过字数限制。", "缩短微博文案后重新送审。"),
    (r"error (20016|10022|10023|10024)|rate", "平台限制了发布频率。", "稍后点“重新发布”，或改期一小时后。"),
    (r"error (20017|20019|20111)", "微博认为与近期内容重复。", "修改微博文案后重新送审。"),
    (r"needs a cover", "公众号图文缺少封面图片。", "上传封面后重新送审。"),
    (r"HTTP 5\d\d|Timeout|timed out|Connect|system busy|error -1", "平台暂时无法访问或繁忙。",
     "稍后点“重新发布”；多次失败请联系信息中心。"),
)
_GENERAL = Reason("平台没有接受这次发布。", "可点“重新发布”；仍然失败请联系信息中心，并告知稿件编号。")


def explain(error: str) -> Reason:
    for pattern, text, advice in _RULES:
        if re.search(pattern, error or "", re.IGNORECASE):
            return Reason(text, advice)
    return _GENERAL
