"""govbot: publishing and moderation for government WeChat Official Accounts and Weibo accounts."""

__version__ = "0.2.0"
