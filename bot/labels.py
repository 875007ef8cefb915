"""Chinese labels for the short English codes stored in the database (statuses, roles, audit events ...).

One table for the console, the CLI and the reports: a code without a label shows as itself.
"""

LABELS: dict[str, dict[str, str]] = {
    "role": {"editor": "编辑", "reviewer": "审核", "approver": "签发", "responder": "答复人", "admin": "管理员"},
    "platform": {"wechat": "微信公众号", "weibo": "政务微博"},
    "post": {"draft": "草稿", "in_review": "审核中", "approved": "已审定", "scheduled": "已排期",
             "published": "已发布", "rejected": "已退回", "failed": "发布失败", "partially_failed": "部分发布失败",
             "cancelled": "已撤销"},
    "publication": {"pending": "待发布", "publishing": "发布中", "published": "已发布", "failed": "发布失败",
                    "missed": "已错过", "cancelled": "已取消"},
    "ticket": {"new": "新工单", "acknowledged": "已受理", "answered": "已答复", "closed": "已关闭"},
    "intent": {"complaint": "投诉", "question": "咨询", "suggestion": "建议", "praise": "表扬", "other": "其他",
               "spam": "垃圾信息"},
    # The part of a rule id before the first dot, for a rule that has no name in rules/names.toml.
    "rule_kind": {"complaint": "投诉", "question": "咨询", "suggestion": "建议", "praise": "表扬", "other": "其他",
                  "spam": "垃圾信息", "topic": "主题", "faq": "常见问题"},
    "close_reason": {"spam": "垃圾信息", "duplicate": "重复", "no_answer_needed": "无需答复", "resolved": "已办结"},
    "how": {"phone": "电话", "in_person": "当面", "letter": "书面", "platform": "平台后台", "other": "其他方式",
            "offline": "线下"},
    "inbox": {"open": "待处理", "new": "新工单", "acknowledged": "已受理", "answered": "已答复", "closed": "已关闭",
              "all": "全部"},
    "subject": {"post": "稿件", "publication": "发布任务", "ticket": "工单", "reply": "答复", "template": "答复模板",
                "message": "消息", "user": "用户", "account": "账号"},
    # Where a check problem is (Problem.where).
    "field": {"title": "标题", "body": "正文", "digest": "摘要", "weibo_text": "微博文案", "cover": "封面", "byline": "作者", "post": "稿件",
              "account": "账号", "text": "答复内容", "answer": "答复内容"},
    "deadline": {"first_response": "首次答复", "resolution": "办结"},
    "delivery": {"email": "邮件", "wecom": "企业微信"},
    "reply": {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败"},
    "notification": {"pending": "待发送", "sent": "已发送", "failed": "发送失败"},
    "notice": {"warning": "临期提醒", "escalation": "超期督办", "post_waiting": "待审签", "post_rejected": "稿件退回",
               "post_published": "稿件已发布", "post_failed": "发布失败"},
    "channel": {"wechat_passive": "公众号被动回复", "wechat_comment": "公众号留言回复",
                "wechat_custom": "公众号客服消息", "weibo_comment": "微博评论回复", "offline": "线下答复"},
    "kind": {"wechat_message": "公众号消息", "wechat_comment": "公众号留言", "weibo_comment": "微博评论"},
    # What a refused action was about to do (the `doing`/`action` of an error), as the error text says it.
    "verb": {"edited": "修改", "unscheduled": "撤销排期", "signed": "签署", "rejected": "退回", "acknowledge it": "签收",
             "reassign it": "转办", "close it again": "再次关闭", "record an answer": "登记答复"},
    "decision": {"approve": "通过", "reject": "退回"},
    "gap": {"ok": "正常", "warn": "预警", "limit": "超限"},
    "priority": {"1": "高", "2": "普通", "3": "低"},
    "action": {
        "ticket.opened": "生成工单", "ticket.acknowledged": "签收", "ticket.reassigned": "转办", "ticket.closed": "关闭",
        "ticket.note_added": "添加备注", "ticket.assigned": "指派", "ticket.warned": "临期提醒", "ticket.escalated": "超期上报",
        "reply.queued": "答复待发送", "reply.sent": "答复已送达", "reply.failed": "答复发送失败",
        "reply.refused": "平台拒收答复", "reply.channel_closed": "渠道已关闭，答复未发送",
        "reply.retry_scheduled": "等待自动重试", "reply.retry_requested": "重试发送", "reply.interrupted": "发送中断",
        "reply.recorded_offline": "登记线下答复",
        "post.created": "创建", "post.edited": "修改", "post.submitted": "送审", "post.signed": "签署通过",
        "post.approved": "审定", "post.rejected": "退回", "post.chain_restarted": "审签重新开始", "post.scheduled": "排期",
        "post.unscheduled": "撤销排期", "post.published": "已发布", "post.partially_failed": "部分发布失败",
        "post.failed": "发布失败",
        "publication.scheduled": "排期发布", "publication.rescheduled": "重新排期", "publication.cancelled": "取消发布",
        "publication.published": "发布成功", "publication.failed": "发布失败", "publication.missed": "错过发布时间",
        "publication.check_failed": "发布前复查未通过",
        "template.created": "新建答复模板", "template.updated": "修改答复模板", "template.deleted": "删除答复模板",
        "message.corrected": "更正分类",
        "rectification.updated": "填写整改情况",
        "post.retargeted": "修改发布账号或时间", "post.retried": "重新发布",
        "user.created": "添加用户", "user.updated": "修改用户", "department.saved": "保存部门", "rules.edited": "修改规则",
    },
}


def kinds() -> list[str]:
    return sorted(LABELS)


def label(value: object, kind: str) -> str:
    if value is None:
        return ""
    return LABELS.get(kind, {}).get(str(value), str(value))
