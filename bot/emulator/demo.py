"""Live-demo traffic: citizens commenting and writing to the accounts while the bot runs.

Started by ``python -m bot.emulator --demo``. Every ``interval_s`` seconds one event
happens at random: a comment under a published WeChat article, a comment under a Weibo
status, or a WeChat message pushed to an account that has a callback URL. The texts are
short, colloquial and mixed like real comment sections: praise, questions, complaints,
suggestions and spam.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from loguru import logger

from bot.emulator import wechat, weibo
from bot.emulator.push import PushError, make_openid, push_message
from bot.emulator.state import EmulatorState

PRAISE = ["点赞👍", "辛苦了，为你们点赞！", "这个政策好，实实在在为老百姓办事", "沙发",
          "感谢社区工作人员，上周帮我家老人办好了医保", "支持！", "zf这次效率很高👏"]
QUESTIONS = ["社保卡怎么补办？", "请问新生儿医保在哪里办理？需要带什么材料？",
             "公积金提取现在还要去窗口吗", "老年人免费乘车卡在哪办？",
             "孩子上小学的入学登记什么时候开始？", "居住证到期了，续签要本人去吗？"]
COMPLAINTS = ["小区门口垃圾没人清理，已经好几天了", "晚上十一点了工地还在施工，吵得睡不着",
              "路灯坏了一个多月没人修", "菜市场旁边污水横流，味道很大",
              "公交站台被电动车占满了，根本没法等车", "楼下餐馆油烟直接排进我家窗户"]
SUGGESTIONS = ["建议在学校门口增设一个红绿灯", "希望公园能多放几个垃圾桶",
               "建议周末也开放办事大厅"]
SPAM = ["加V领取免费福利，私聊", "兼职刷单日结300，有意者联系", "关注我回关～"]
CATEGORIES = [(PRAISE, 0.3), (QUESTIONS, 0.25), (COMPLAINTS, 0.25), (SUGGESTIONS, 0.1),
              (SPAM, 0.1)]
NICKNAMES = ["小城居民", "爱吃辣的阿强", "晴天", "老张不老", "walker_88", "一棵树", "江边的风"]


def pick_text(rng: random.Random) -> str:
    texts = rng.choices([c for c, _ in CATEGORIES], weights=[w for _, w in CATEGORIES])[0]
    return rng.choice(texts)


def _targets(state: EmulatorState) -> tuple[list[dict], list[dict], list[str]]:
    with state.lock:
        wechat.settle_publishes(state)
        articles = [a for a in state.data["wechat"]["articles"].values()
                    if not all(i["is_deleted"] for i in a["news_item"])]
        statuses = [s for s in state.data["weibo"]["statuses"].values() if not s.get("deleted")]
        callbacks = [appid for appid, acc in state.data["wechat"]["accounts"].items()
                     if acc.get("callback_url")]
        return articles, statuses, callbacks


async def demo_step(state: EmulatorState, rng: random.Random) -> dict[str, Any] | None:
    """Generate one event; returns what happened, or None if there was nothing to do."""
    articles, statuses, callbacks = _targets(state)
    choices = [kind for kind, present in (("wechat_comment", articles),
                                          ("weibo_comment", statuses),
                                          ("wechat_message", callbacks)) if present]
    if not choices:
        return None
    kind = rng.choice(choices)
    person = rng.randrange(40)
    text = pick_text(rng)
    if kind == "wechat_comment":
        article = rng.choice(articles)
        return {"kind": kind, **wechat.inject_comment(
            state, article_id=article["article_id"], openid=make_openid(f"demo:{person}"),
            content=text)}
    if kind == "weibo_comment":
        status = rng.choice(statuses)
        return {"kind": kind, **weibo.inject_comment(
            state, status_id=status["id"], uid=6_100_000_000 + person,
            screen_name=f"{rng.choice(NICKNAMES)}{person}", text=text)}
    appid = rng.choice(callbacks)
    result = await push_message(state, appid, "text",
                                openid=make_openid(f"{appid}:demo:{person}"), content=text)
    return {"kind": kind, **result.to_dict()}


async def run_demo(state: EmulatorState, *, interval_s: float = 20.0,
                   seed: int | None = None) -> None:
    """Generate traffic forever (until cancelled)."""
    rng = random.Random(seed)
    while True:
        await asyncio.sleep(interval_s * rng.uniform(0.5, 1.5))
        try:
            event = await demo_step(state, rng)
        except (PushError, ValueError) as exc:
            logger.warning("emulator demo: {}", exc)
            continue
        if event is not None:
            logger.info("emulator demo: {} {}", event["kind"],
                        event.get("content") or event.get("text") or event.get("request_xml"))
