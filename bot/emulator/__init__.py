"""Built-in emulator of the WeChat Official Account and Sina Weibo APIs (see app.py)."""
