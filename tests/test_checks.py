"""Pre-publish checks: each check with a failing example that names what and where; rule files validated."""

from pathlib import Path

import pytest

from bot.config import REPO_ROOT, parse_config
from bot.publishing.checks import CoverInfo, check_post, image_kind
from bot.textcheck import CheckRulesError, cached_check_rules, load_check_rules, parse_sensitive, parse_typos

RULES = load_check_rules(REPO_ROOT / "rules")
CONFIG = parse_config({})
COVER = CoverInfo("cover.png", 2048, "png")
WEIBO_OK = "示例县发布秋季招聘公告，详情 https://www.gov.example.cn/zp/2026"


def problems(config=CONFIG, rules=RULES, **kw):
    fields = {"title": "关于开展秋季招聘的公告", "body": "<p>经研究，决定开展秋季招聘。</p>", "digest": "",
              "weibo_text": WEIBO_OK, "cover": COVER, "platforms": ["wechat", "weibo"]}
    return check_post(**{**fields, **kw}, config=config, rules=rules)


def codes(ps) -> list[str]:
    return [p.code for p in ps]


def test_a_clean_post_passes():
    assert problems() == []


def test_shipped_rule_files_load():
    assert len(RULES.sensitive) >= 20
    assert any(t.pattern is not None for t in RULES.sensitive)
    assert len(RULES.typos) >= 30


@pytest.mark.parametrize(("field", "code", "where"), [("title", "empty_title", "title"),
                                                      ("body", "empty_body", "body")])
def test_empty_title_and_body(field, code, where):
    ps = problems(**{field: "  "})
    assert codes(ps) == [code]
    assert ps[0].where == where


def test_body_of_markup_only_is_empty_but_a_picture_is_content():
    assert codes(problems(body="<p>&nbsp;</p>\n<br/>")) == ["empty_body"]
    assert problems(body='<p><img src="https://mmbiz.qpic.cn/x.png"/></p>') == []


def test_sensitive_word_names_word_field_line_column_and_context():
    body = "<p>第一段。</p>\n<p>本材料为内部资料，请勿转发。</p>"
    [p] = problems(body=body)
    assert p.code == "sensitive_word"
    assert p.where == "body" and p.line == 2 and p.column == 8
    assert body[p.offset:p.offset + 4] == "内部资料"
    assert "内部资料" in p.message and "涉密标识" in p.message
    assert "本材料为内部资料，请勿转发" in p.snippet
    assert str(p).startswith("body line 2 col 8: sensitive word “内部资料” (涉密标识)")


def test_sensitive_words_in_every_field_including_the_weibo_text():
    ps = problems(title="机密：通知", digest="绝密摘要", weibo_text=WEIBO_OK + " 未经审核")
    assert sorted((p.where, p.code) for p in ps) == [("digest", "sensitive_word"), ("title", "sensitive_word"),
                                                    ("weibo_text", "sensitive_word")]


def test_exempt_phrase_is_not_reported_but_the_word_elsewhere_is():
    ps = problems(body="<p>人人都要保守国家秘密。</p><p>这是秘密。</p>")
    assert len(ps) == 1 and ps[0].snippet.count("秘密") >= 1 and ps[0].offset == "<p>人人都要保守国家秘密。</p><p>这是".__len__()


def test_id_number_is_found_by_pattern_and_masked():
    body = "<p>联系人：张三，身份证号 11010119900307123X，电话见附件。</p>"
    [p] = problems(body=body)
    assert p.code == "sensitive_pattern" and "个人信息" in p.message
    assert "11010119900307123X" not in str(p)
    assert "110" in p.message and "*" in p.message
    assert body[p.offset:p.offset + 18] == "11010119900307123X"


def test_full_width_and_case_are_folded():
    [p] = problems(body="<p>身份证号：１１０１０１１９９００３０７１２３ｘ</p>")
    assert p.code == "sensitive_pattern"


def test_ordinary_long_numbers_are_not_id_numbers():
    assert problems(body="<p>项目编号 2026112100000000001，咨询电话 0731-88888888。</p>") == []


def test_typo_names_wrong_phrase_position_and_suggestion():
    body = "<p>县人民政付召开坐谈会，付县长出席。</p>"
    ps = problems(body=body)
    assert codes(ps) == ["typo", "typo", "typo"]
    found = {body[p.offset:p.offset + len(p.suggestion)]: p.suggestion for p in ps}
    assert found == {"人民政付": "人民政府", "坐谈会": "座谈会", "付县长": "副县长"}
    title_typo = problems(title="关于印发《暂性规定》的通知")[0]
    assert title_typo.where == "title" and title_typo.suggestion == "暂行规定" and title_typo.column == 6


def test_typo_note_is_shown():
    [p] = problems(body="<p>截止目前，已完成。</p>")
    assert "截至目前" in p.message and "时间点" in p.message


def test_repeated_hits_are_capped_with_a_count():
    ps = problems(body="<p>" + "布署，" * 9 + "</p>")
    assert len(ps) == 5 and "4 more not shown" in ps[-1].message


def test_wechat_title_too_long():
    cfg = parse_config({"platforms": {"wechat": {"title_max_chars": 10}}})
    [p] = problems(title="关于开展二〇二六年秋季招聘工作的公告", config=cfg)
    assert p.code == "wechat_title_too_long" and p.where == "title" and "10" in p.message and "18" in p.message
    assert p.column == 11


def test_wechat_cover_required_and_must_be_an_image():
    [p] = problems(cover=None)
    assert (p.code, p.where) == ("wechat_cover_missing", "cover")
    [p] = problems(cover=CoverInfo("cover.pdf", 1000, None), platforms=["wechat"])
    assert p.code == "wechat_cover_invalid" and "cover.pdf" in p.message
    [p] = problems(cover=CoverInfo("huge.png", 11 * 1024 * 1024, "png"), platforms=["wechat"])
    assert p.code == "wechat_cover_invalid" and "bytes" in p.message


def test_cover_not_needed_for_weibo_only():
    assert problems(cover=None, platforms=["weibo"]) == []


def test_wechat_digest_limit():
    [p] = problems(digest="摘" * 129)
    assert (p.code, p.where) == ("wechat_digest_too_long", "digest")
    assert problems(digest="摘" * 128) == []


def test_weibo_text_required_when_weibo_is_a_target():
    [p] = problems(weibo_text="")
    assert (p.code, p.where) == ("weibo_text_missing", "weibo_text")
    assert problems(weibo_text="", platforms=["wechat"]) == []


def test_weibo_text_length_and_long_posts():
    text = "字" * 150 + " https://gov.example.cn/a"
    [p] = problems(weibo_text=text)
    # 150 characters, half a space, 10 for the link: 161 as Weibo counts.
    assert p.code == "weibo_text_too_long" and "140" in p.message and "161" in p.message
    assert p.offset == 140 and p.column == 141
    long_ok = parse_config({"platforms": {"weibo": {"allow_long_posts": True}}})
    assert problems(weibo_text=text, config=long_ok) == []
    [p] = problems(weibo_text="字" * 2001 + " https://gov.example.cn/a", config=long_ok)
    assert p.code == "weibo_text_too_long" and "2000" in p.message


@pytest.mark.parametrize("text", ["详情 https://gov.example.cn/a", "详情 http://news.GOV.example.cn/x?id=1",
                                  "详情：https://www.gov.example.cn）"])
def test_weibo_link_on_safe_domain_or_subdomain_passes(text):
    assert problems(weibo_text=text) == []


@pytest.mark.parametrize(("text", "named"), [("没有链接的微博", None),
                                             ("详情 https://example.com/gov.example.cn", "example.com"),
                                             ("详情 https://gov.example.cn.evil.com/a", "gov.example.cn.evil.com"),
                                             ("详情 https://notgov.example.cn/a", "notgov.example.cn")])
def test_weibo_link_elsewhere_fails_and_names_the_host(text, named):
    [p] = problems(weibo_text=text)
    assert (p.code, p.where) == ("weibo_link_missing", "weibo_text") and "gov.example.cn" in p.message
    if named:
        assert f"links to {named}" in p.message


def test_weibo_picture_format_and_size():
    [p] = problems(cover=CoverInfo("cover.bmp", 1000, "bmp"), platforms=["weibo"])
    assert (p.code, p.where) == ("weibo_picture_invalid", "cover")
    [p] = problems(cover=CoverInfo("cover.jpg", 6 * 1024 * 1024, "jpeg"), platforms=["weibo"])
    assert p.code == "weibo_picture_invalid"


def test_image_kind_from_magic_bytes():
    assert image_kind(b"\x89PNG\r\n\x1a\n....") == "png"
    assert image_kind(b"\xff\xd8\xff\xe0") == "jpeg"
    assert image_kind(b"GIF89a") == "gif"
    assert image_kind(b"%PDF-1.7") is None


# ---- rule files are validated with the file and line or key named ----


@pytest.mark.parametrize(("text", "where", "reason"), [
    ("机密\n\n机密\n", "line 3", "duplicate word '机密' (first on line 1)"),
    ("[泄密]\n密\n", "line 2", "single-character"),
    ("re:(unclosed\n", "line 1", "invalid regular expression"),
    ("# c\nre:a*\n", "line 2", "matches empty text"),
    ("机密\n!国家安全\n", "line 2", "contains no listed word"),
    ("[ ]\n", "line 1", "empty category"),
])
def test_sensitive_file_errors_name_the_line(text, where, reason):
    with pytest.raises(CheckRulesError) as e:
        parse_sensitive(text, file="rules/sensitive.txt")
    assert e.value.where == where and reason in e.value.reason
    assert str(e.value).startswith(f"rules/sensitive.txt: {where}: ")


@pytest.mark.parametrize(("text", "where", "reason"), [
    ('["职务"]\n"付县长" = ""\n', "key 职务.'付县长'", "non-empty"),
    ('["职务"]\n"付县长" = "付县长"\n', "key 职务.'付县长'", "the same"),
    ('["称谓"]\n"县长" = "副县长"\n', "key 称谓.'县长'", "contains the wrong phrase"),
    ('["a"]\n"付" = "副"\n', "key a.'付'", "two characters"),
    ('["a"]\n"布署" = "部署"\n["b"]\n"布署" = "部署"\n', "key b.'布署'", "listed twice"),
    ('["a"]\n"布署" = { right = "部署", why = "x" }\n', "key a.'布署'", "unknown field(s) why"),
    ('"布署" = "部署"\n', "key '布署'", "[category] table"),
    ('["a"]\n"部门" = "部门们"\n"正门" = "部门"\n', "key a.'部门'", "contains the wrong phrase"),
    ('["a"\n', "syntax", "line 1"),
])
def test_typos_file_errors_name_the_key(text, where, reason):
    with pytest.raises(CheckRulesError) as e:
        parse_typos(text, file="rules/typos.toml")
    assert e.value.where == where, e.value
    assert reason in e.value.reason


def test_typo_correction_containing_another_wrong_phrase_is_refused():
    with pytest.raises(CheckRulesError, match="the correction of .* contains it"):
        parse_typos('["a"]\n"政付" = "政府"\n"人民正府" = "人民政付"\n', file="t.toml")


def test_missing_or_non_utf8_files_are_named(tmp_path: Path):
    with pytest.raises(CheckRulesError, match=r"sensitive\.txt: missing"):
        load_check_rules(tmp_path / "nowhere")
    (tmp_path / "sensitive.txt").write_text("机密\n", encoding="utf-8")
    # typos.toml absent from the site's directory: the shipped one applies.
    assert load_check_rules(tmp_path).typos == RULES.typos
    (tmp_path / "typos.toml").write_bytes("[\"a\"]\n\"布署\" = \"部署\"\n".encode("gbk"))
    with pytest.raises(CheckRulesError, match="not UTF-8"):
        load_check_rules(tmp_path)


def test_cache_reloads_changed_files_and_keeps_last_good_rules(tmp_path: Path):
    (tmp_path / "sensitive.txt").write_text("机密\n", encoding="utf-8")
    (tmp_path / "typos.toml").write_text('["a"]\n"布署" = "部署"\n', encoding="utf-8")
    first = cached_check_rules(tmp_path)
    assert cached_check_rules(tmp_path) is first
    (tmp_path / "sensitive.txt").write_text("机密\n绝密文件\n", encoding="utf-8")
    second = cached_check_rules(tmp_path)
    assert [t.text for t in second.sensitive] == ["机密", "绝密文件"]
    (tmp_path / "sensitive.txt").write_text("re:(broken\n", encoding="utf-8")
    assert cached_check_rules(tmp_path) is second


def test_wechat_author_limit():
    [p] = problems(byline="作" * 17, platforms=["wechat"])
    assert (p.code, p.where) == ("wechat_author_too_long", "byline") and "16" in p.message
    assert problems(byline="作" * 16, platforms=["wechat"]) == []


def test_wechat_title_limit_is_32_by_default():
    [p] = problems(title="题" * 33, platforms=["wechat"])
    assert p.code == "wechat_title_too_long" and "32" in p.message
    assert problems(title="题" * 32, platforms=["wechat"]) == []


def test_wechat_body_images_must_be_uploaded():
    body = '<p>图</p><img src="/media/3"><img src="http://mmbiz.qpic.cn/mmbiz_png/x/0"><img src="https://x.com/a.png">'
    [p] = problems(body=body, platforms=["wechat"])
    assert p.code == "wechat_external_image" and "https://x.com/a.png" in p.message and "上传" in p.message_zh


def test_weibo_ascii_heavy_text_that_weibo_accepts_passes():
    # 250 ASCII characters count 125, the link 10: 135 <= 140 although len() is 276.
    text = "Notice " + "x" * 243 + " https://gov.example.cn/notice/2026/autumn-recruitment-details"
    assert len(text) > 140
    assert problems(weibo_text=text, platforms=["weibo"]) == []


def test_weibo_hashtag_refused_in_chinese_with_the_reason():
    [p] = problems(weibo_text="秋季招聘 #招聘# 详情 https://gov.example.cn/zp", platforms=["weibo"])
    assert (p.code, p.where) == ("weibo_hashtag", "weibo_text")
    assert "#招聘#" in p.message_zh and "话题" in p.message_zh and p.offset == 5


def test_an_image_written_media_id_is_kept_as_the_one_spelling():
    from bot.publishing.images import MEDIA_SRC
    from bot.publishing.richtext import clean_body

    body = clean_body('<p>图</p><img src="media:12"><img src=\'MEDIA:14\'><img src="/media/13">')
    assert body == '<p>图</p><img src="/media/12"><img src="/media/14"><img src="/media/13">'
    assert [ref for _src, ref in MEDIA_SRC.findall(body)] == ["12", "14", "13"]
