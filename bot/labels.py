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
    "intent": {"complaint": "投诉", "question": "咨询", "suggestion": "建议", "praise": "表扬", "other": "其他"},
    "reply": {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败"},
    "notification": {"pending": "待发送", "sent": "已发送", "failed": "发送失败"},
    "notice": {"warning": "临期提醒", "escalation": "超期督办"},
    "channel": {"wechat_passive": "公众号被动回复", "wechat_comment": "公众号留言回复",
                "wechat_custom": "公众号客服消息", "weibo_comment": "微博评论回复", "offline": "线下答复"},
    "kind": {"wechat_message": "公众号消息", "wechat_comment": "公众号留言", "weibo_comment": "微博评论"},
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
        "post.unscheduled": "撤销排期",
        "user.created": "添加用户", "user.updated": "修改用户", "department.saved": "保存部门", "rules.edited": "修改规则",
    },
}


def label(value: object, kind: str) -> str:
    if value is None:
        return ""
    return LABELS.get(kind, {}).get(str(value), str(value))
