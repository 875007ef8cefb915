"""Triage of citizen messages (留言, 评论): intent, topic, spam and FAQ answers from rules kept as data in rules/.

rules.py loads and validates the rules (and reloads them: RuleStore); classifier.py classifies;
faq.py picks automatic answers for confident questions; cli.py is `govbot rules`.
"""
