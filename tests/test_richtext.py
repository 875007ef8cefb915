"""The stored body keeps what WeChat keeps from Word, WPS, 秀米 and 135编辑器 pastes, and nothing else;
Weibo text is counted as Weibo counts it."""

from bot.publishing.richtext import clean_body, plain_text
from bot.publishing.weibo_length import weibo_length

WORD = ('<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>p.MsoNormal{margin:0}</style></head>'
        '<body><!--[if gte mso 9]><xml><o:OfficeDocumentSettings/></xml><![endif]-->'
        '<p class="MsoNormal" style="mso-pagination:widow-orphan;text-align:center;font-size:16pt">'
        '<b><span lang="EN-US" style="color:#C00000">关于秋季招聘</span></b><o:p></o:p></p>'
        '<table class="MsoTableGrid" border="1"><tr><td width="200" style="border:solid windowtext 1.0pt">岗位</td></tr>'
        '</table></body></html>')
XIUMI = ('<section style="margin: 10px 0; box-sizing: border-box;" data-role="outer" class="_135editor">'
         '<section style="border-left: 4px solid #245a96; padding-left: 8px;"><p style="letter-spacing: 1px;">'
         '一、报名时间</p></section><img src="https://img.example.cn/a.png" style="width:100%" onclick="x()"></section>')


def test_word_and_wps_paste_keeps_formatting_drops_office_markup():
    out = clean_body(WORD)
    assert '<p style="text-align:center;font-size:16pt"><b><span style="color:#C00000">关于秋季招聘</span></b></p>' in out
    assert '<td width="200"' in out and "岗位" in out
    for gone in ("mso-", "MsoNormal", "o:p", "<style", "<xml", "lang=", "<!--"):
        assert gone not in out


def test_layout_tool_sections_and_images_stay_scripts_and_handlers_go():
    out = clean_body(XIUMI + '<script>alert(1)</script><a href="https://evil.example">链接文字</a><iframe src="x"></iframe>')
    assert 'border-left:4px solid #245a96' in out.replace(": ", ":") and "<section" in out
    assert '<img src="https://img.example.cn/a.png" style="width:100%">' in out
    for gone in ("onclick", "data-role", "_135editor", "<script", "alert", "<a ", "<iframe"):
        assert gone not in out
    assert "链接文字" in out


def test_plain_text_for_diff_and_counts():
    assert plain_text("<p>第一段</p><p>第二&nbsp;段<br>换行</p>") == "第一段\n第二 段\n换行"


def test_weibo_counts_ascii_half_and_links_fixed():
    """Weibo's counter: bytes halved and rounded up (ASCII 1, other 2, astral 4), a link 20 bytes."""
    assert weibo_length("政务公开") == 4
    assert weibo_length("abcd") == 2 and weibo_length("abc") == 2
    assert weibo_length("好👍") == 3
    assert weibo_length("看 https://gov.example.cn/a/very/long/path/2026") == (2 + 1 + 20) / 2 + 0.5
    assert weibo_length("两个链接 http://a.cn https://b.cn/x") == (8 + 1 + 20 + 1 + 20) / 2
    # Past 140 bytes a link adds its excess; short weibo.com links count themselves; t.cn counts as text.
    assert weibo_length("https://gov.example.cn/" + "a" * 150) == (173 - 140 + 20) / 2 + 0.5
    assert weibo_length("https://weibo.com/123") == 21 / 2 + 0.5
    assert weibo_length("http://t.cn/A6abc") == 17 / 2 + 0.5
