"""Tests for bot.mrkdwn: escaping, Markdown → mrkdwn conversion and splitting."""

from __future__ import annotations

import re

import pytest

from bot.slack.mrkdwn import escape, markdown_to_mrkdwn, split_mrkdwn

ZWSP = "\u200b"
FENCE = "```"

# A Slack "<...>" construct is only allowed as a plain web/mailto link without a label.
_ANGLE_RE = re.compile(r"<[^>]*>?")
_SAFE_LINK_RE = re.compile(r"<(?:https?|mailto):[^|<>\s]+>")
_BROADCAST_RE = re.compile(r"@(?:channel|here|everyone)", re.IGNORECASE)


def assert_inert(mrkdwn: str) -> None:
    """No mention, broadcast, special link or labelled link can come out of ``mrkdwn``."""
    for match in _ANGLE_RE.finditer(mrkdwn):
        assert _SAFE_LINK_RE.fullmatch(match.group()), match.group()
    assert not _BROADCAST_RE.search(mrkdwn)


def no_trailing_whitespace(text: str) -> bool:
    return all(line == line.rstrip() for line in text.split("\n"))


# --------------------------------------------------------------------------- escape


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<#C123>", "&lt;#C123&gt;"),
        ("<!subteam^S1>", "&lt;!subteam^S1&gt;"),
        ("<https://evil.example|bank>", "&lt;https://evil.example|bank&gt;"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("&lt;", "&amp;lt;"),
        ("a > b < c", "a &gt; b &lt; c"),
        ("plain *text* _here_", "plain *text* _here_"),
        ("", ""),
    ],
)
def test_escape_entities(raw: str, expected: str) -> None:
    assert escape(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("@channel", f"@{ZWSP}channel"),
        ("hey @here!", f"hey @{ZWSP}here!"),
        ("@EVERYONE look", f"@{ZWSP}EVERYONE look"),
        ("@Here and @Channel", f"@{ZWSP}Here and @{ZWSP}Channel"),
        ("<!here> @here", f"&lt;!here&gt; @{ZWSP}here"),
        ("@someone", "@someone"),
    ],
)
def test_escape_defuses_broadcast_words(raw: str, expected: str) -> None:
    assert escape(raw) == expected


def test_escape_is_not_idempotent_for_entities_but_is_for_broadcasts() -> None:
    assert escape(escape("a & b")) == "a &amp;amp; b"
    once = escape("@here")
    assert escape(once) == once


# --------------------------------------------------------------------------- inline formatting


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold**", "*bold*"),
        ("__bold__", "*bold*"),
        ("*em*", "_em_"),
        ("_em_", "_em_"),
        ("~~gone~~", "~gone~"),
        ("***both***", "_*both*_"),
        ("**bold _and em_**", "*bold _and em_*"),
        ("`code`", "`code`"),
        ("`a <b> & **c**`", "`a &lt;b&gt; &amp; **c**`"),
        ("`<!channel> @here`", "`&lt;!channel&gt; @here`"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("&lt;!channel&gt;", "&lt;!channel&gt;"),
        ("&copy; 2024", "© 2024"),
        ("a\\*b", "a*b"),
    ],
)
def test_inline_formatting(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


def test_text_cannot_open_a_code_block() -> None:
    out = markdown_to_mrkdwn("a ``` b")
    assert FENCE not in out
    assert out.replace(ZWSP, "") == "a ``` b"


# --------------------------------------------------------------------------- blocks


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("# Title", "*Title*"),
        ("###### Small", "*Small*"),
        ("Setext\n======", "*Setext*"),
        ("## With **bold** & `code`", "*With bold &amp; `code`*"),
        ("# <!channel>", "*&lt;!channel&gt;*"),
    ],
)
def test_headings_become_bold_lines(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


def test_fenced_code_block_drops_language_and_escapes() -> None:
    markdown = "```python\nif a < b && c:\n    print('<@U1> *x*')\n```"
    assert markdown_to_mrkdwn(markdown) == (
        "```\nif a &lt; b &amp;&amp; c:\n    print('&lt;@U1&gt; *x*')\n```"
    )


def test_indented_code_block() -> None:
    assert markdown_to_mrkdwn("para\n\n    x = <y>\n    z") == "para\n\n```\nx = &lt;y&gt;\nz\n```"


def test_code_block_containing_fence_cannot_close_it() -> None:
    out = markdown_to_mrkdwn("````\n```\nstill code\n````")
    assert out.count(FENCE) == 2
    assert out.startswith("```\n") and out.endswith("\n```")
    assert "still code" in out


def test_paragraphs_and_breaks() -> None:
    markdown = "first para\nsoft break\n\nhard  \nbreak\\\nagain\n\n\n\nlast"
    assert markdown_to_mrkdwn(markdown) == ("first para\nsoft break\n\nhard\nbreak\nagain\n\nlast")


def test_horizontal_rule() -> None:
    assert markdown_to_mrkdwn("above\n\n---\n\nbelow") == "above\n\n———\n\nbelow"


def test_blockquote_prefixes_every_line() -> None:
    markdown = "> quoted **text**\n> second line\n>\n> new para"
    assert markdown_to_mrkdwn(markdown) == ("> quoted *text*\n> second line\n> new para")


def test_blockquote_with_hostile_content() -> None:
    out = markdown_to_mrkdwn("> <!here> please")
    assert out == "> &lt;!here&gt; please"


# --------------------------------------------------------------------------- lists


def test_bullet_list() -> None:
    assert markdown_to_mrkdwn("- one\n- **two**\n* three") == "• one\n• *two*\n\n• three"


def test_nested_bullet_lists_indent_four_spaces_per_level() -> None:
    markdown = "- a\n  - b\n    - c\n- d"
    assert markdown_to_mrkdwn(markdown) == "• a\n    ◦ b\n        ◦ c\n• d"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("1. one\n2. two", "1. one\n2. two"),
        ("3. three\n4. four", "3. three\n4. four"),
        ("7) seven\n8) eight", "7. seven\n8. eight"),
        ("0. zero", "0. zero"),
    ],
)
def test_ordered_lists_keep_start_number(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


def test_mixed_nesting() -> None:
    markdown = "1. first\n   - sub\n     1. deep\n2. second"
    assert markdown_to_mrkdwn(markdown) == "1. first\n    ◦ sub\n        1. deep\n2. second"


def test_loose_list_item_with_two_paragraphs() -> None:
    markdown = "- para one\n\n  para two\n- next"
    assert markdown_to_mrkdwn(markdown) == "• para one\n  para two\n• next"


def test_task_list_text_is_kept() -> None:
    assert markdown_to_mrkdwn("- [ ] todo\n- [x] done") == "• [ ] todo\n• [x] done"


def test_list_item_with_code_block() -> None:
    markdown = "- run:\n\n  ```\n  make <all>\n  ```"
    assert markdown_to_mrkdwn(markdown) == "• run:\n```\nmake &lt;all&gt;\n```"


def test_empty_list_item() -> None:
    assert markdown_to_mrkdwn("- a\n-\n- b") == "• a\n•\n• b"


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[bank](https://evil.example)", "bank (<https://evil.example>)"),
        ("[https://a.example](https://a.example)", "<https://a.example>"),
        ("[**Docs**](http://d.example/x?a=1&b=2)", "*Docs* (<http://d.example/x?a=1&amp;b=2>)"),
        ("[](https://empty.example)", "<https://empty.example>"),
        ("<https://auto.example/path>", "<https://auto.example/path>"),
        ("<mailto:a@b.example>", "<mailto:a@b.example>"),
        ("<a@b.example>", "<mailto:a@b.example>"),
        ("[mail me](mailto:a@b.example)", "mail me (<mailto:a@b.example>)"),
        ("[HTTPS](HTTPS://UP.EXAMPLE)", "HTTPS (<HTTPS://UP.EXAMPLE>)"),
        ("see https://bare.example now", "see https://bare.example now"),
    ],
)
def test_links_show_their_target(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("[x](slack://open?team=T1)", "x (slack://open?team=T1)"),
        ("[x](ftp://files.example)", "x (ftp://files.example)"),
        ("<slack://channel?id=C1>", "slack://channel?id=C1"),
        ("[x](data:text/html,hi)", "[x](data:text/html,hi)"),
        ("[x](relative/path)", "x (relative/path)"),
        ("[x](#anchor)", "x (#anchor)"),
    ],
)
def test_unsafe_schemes_render_as_plain_text(markdown: str, expected: str) -> None:
    out = markdown_to_mrkdwn(markdown)
    assert out == expected
    assert "<" not in out


@pytest.mark.parametrize(
    "markdown",
    [
        "<https://evil.example|bank>",
        "[a](<https://x.example/a b|c>)",
        "[a](https://x.example/%3E%7C)",
        "<https://x.example/a|b>",
        "[x](https://x.example/\u2028y)",
    ],
)
def test_link_urls_never_contain_pipe_angle_or_space(markdown: str) -> None:
    out = markdown_to_mrkdwn(markdown)
    assert_inert(out)
    assert "|" not in "".join(re.findall(r"<[^>]*>", out))


def test_autolink_with_pipe_is_not_a_labelled_link() -> None:
    assert markdown_to_mrkdwn("<https://evil.example|bank>") == "<https://evil.example%7Cbank>"


def test_link_label_is_escaped() -> None:
    out = markdown_to_mrkdwn("[<!channel> @here](https://x.example)")
    assert out == f"&lt;!channel&gt; @{ZWSP}here (<https://x.example>)"


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("![a cat](https://img.example/cat.png)", "a cat (<https://img.example/cat.png>)"),
        ("![](https://img.example/cat.png)", "<https://img.example/cat.png>"),
        ("![x](data:image/png;base64,AAAA)", "x (data:image/png;base64,AAAA)"),
    ],
)
def test_images(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


# --------------------------------------------------------------------------- tables


def test_table_becomes_aligned_code_block() -> None:
    markdown = (
        "| Name | Qty | Note |\n|:-----|----:|:----:|\n"
        "| apple & pear | 3 | x |\n| kiwi | 12 | <b> |"
    )
    assert markdown_to_mrkdwn(markdown) == (
        "```\n"
        "Name         | Qty | Note\n"
        "-------------+-----+-----\n"
        "apple &amp; pear |   3 |  x\n"
        "kiwi         |  12 | &lt;b&gt;\n"
        "```"
    )


def test_table_cells_are_plain_text() -> None:
    markdown = "| a | b |\n|---|---|\n| **x** | [l](https://l.example) |\n| `c` | ~~d~~ |"
    out = markdown_to_mrkdwn(markdown)
    assert out == (
        "```\n"
        "a | b\n"
        "--+-" + "-" * len("l (https://l.example)") + "\n"
        "x | l (https://l.example)\n"
        "c | d\n"
        "```"
    )


def test_table_wide_characters_align() -> None:
    out = markdown_to_mrkdwn("| k | v |\n|---|---|\n| 日本 | 1 |\n| ab | 2 |")
    assert "日本 | 1" in out
    assert "ab   | 2" in out


# --------------------------------------------------------------------------- raw HTML, hostile


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("<div onclick='x'>hi</div>", "&lt;div onclick='x'&gt;hi&lt;/div&gt;"),
        ("a <b>bold</b> c", "a &lt;b&gt;bold&lt;/b&gt; c"),
        ("<!-- <!channel> -->", "&lt;!-- &lt;!channel&gt; --&gt;"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ],
)
def test_raw_html_is_shown_escaped(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "@here",
    "@channel everyone",
    "@EveryOne",
    "<@U123>",
    "<@U123|bob>",
    "<#C123>",
    "<#C123|general>",
    "<!subteam^S1>",
    "<!date^1392734382^{date}|x>",
    "<https://evil.example|bank>",
    "[bank](https://evil.example)",
    "[x](javascript:alert(1))",
    "**<!channel>**",
    "`<!channel>`",
    "```\n<!channel>\n```",
    "> <@U1>",
    "- <#C1>\n  - <!here>",
    "| a |\n|---|\n| <!here> |",
    "&lt;!channel&gt;",
    "&#60;!channel&#62;",
    "<<!channel>>",
    "[<https://a.example>](https://b.example)",
    "<https://a.example/<!here>>",
    "[x](<https://a.example/|<!here>>)",
]


@pytest.mark.parametrize("markdown", HOSTILE)
def test_hostile_input_is_inert(markdown: str) -> None:
    out = markdown_to_mrkdwn(markdown)
    code_spans = re.sub(r"```.*?```|`[^`]*`", "", out, flags=re.DOTALL)
    assert_inert(code_spans)
    assert "<!" not in out and "<@" not in out and "<#" not in out
    assert no_trailing_whitespace(out)


@pytest.mark.parametrize(
    "markdown",
    [
        "trailing   \nspaces   ",
        "| a | bbbbbb |\n|---|---|\n| 1 | 2 |",
        "```\ncode   \n```",
        "- item   \n- item2\t",
        "> quote   ",
        "\n\n\npara\n\n\n",
    ],
)
def test_no_trailing_whitespace(markdown: str) -> None:
    out = markdown_to_mrkdwn(markdown)
    assert no_trailing_whitespace(out)
    assert out == out.strip()


def test_empty_input() -> None:
    assert markdown_to_mrkdwn("") == ""
    assert markdown_to_mrkdwn("   \n\n ") == ""


# --------------------------------------------------------------------------- split_mrkdwn


def strip_fences(chunks: list[str]) -> str:
    return re.sub(r"\s|```", "", "".join(chunks))


def test_split_short_text_is_one_chunk() -> None:
    assert split_mrkdwn("hello") == ["hello"]
    assert split_mrkdwn("x" * 3000) == ["x" * 3000]


def test_split_empty() -> None:
    assert split_mrkdwn("") == []
    assert split_mrkdwn("\n\n") == []


def test_split_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError):
        split_mrkdwn("abc", limit=4)


def test_split_prefers_paragraph_boundaries() -> None:
    paragraphs = [f"paragraph {i}\n" + "word " * 10 + "end" for i in range(10)]
    text = "\n\n".join(paragraphs)
    chunks = split_mrkdwn(text, limit=200)
    assert all(len(chunk) <= 200 for chunk in chunks)
    assert "\n\n".join(chunks) == text
    for chunk in chunks:
        assert chunk.startswith("paragraph ") and chunk.endswith("end")


def test_split_falls_back_to_line_boundaries() -> None:
    text = "\n".join(f"line {i:03d} " + "x" * 20 for i in range(50))
    chunks = split_mrkdwn(text, limit=100)
    assert all(len(chunk) <= 100 for chunk in chunks)
    assert "\n".join(chunks) == text


def test_split_hard_cut_when_no_boundary() -> None:
    text = "y" * 250
    chunks = split_mrkdwn(text, limit=100)
    assert [len(chunk) for chunk in chunks] == [100, 100, 50]
    assert "".join(chunks) == text


@pytest.mark.parametrize("offset", range(0, 6))
@pytest.mark.parametrize("entity", ["&amp;", "&lt;", "&gt;"])
def test_split_never_cuts_inside_an_entity(offset: int, entity: str) -> None:
    text = "z" * (95 + offset) + entity * 40
    chunks = split_mrkdwn(text, limit=100)
    assert "".join(chunks) == text
    for chunk in chunks:
        assert len(chunk) <= 100
        assert re.sub(r"&(?:amp|lt|gt);", "", chunk).count("&") == 0
        assert ";" not in re.sub(r"&(?:amp|lt|gt);", "", chunk)


def test_split_code_block_spanning_chunks_is_closed_and_reopened() -> None:
    code_lines = [f"    line_{i:03d} = call(a &amp;&amp; b)" for i in range(60)]
    text = "Intro paragraph.\n\n```\n" + "\n".join(code_lines) + "\n```\n\nOutro paragraph."
    chunks = split_mrkdwn(text, limit=300)
    assert len(chunks) > 3
    assert all(len(chunk) <= 300 for chunk in chunks)
    for chunk in chunks:
        assert chunk.count(FENCE) % 2 == 0, chunk
    # Middle chunks are self-contained code blocks.
    for chunk in chunks[1:-1]:
        assert chunk.startswith("```\n") and chunk.endswith("\n```")
    recovered = [
        line for chunk in chunks for line in chunk.split("\n") if line.startswith("    line_")
    ]
    assert recovered == code_lines
    assert chunks[0].startswith("Intro paragraph.")
    assert chunks[-1].endswith("Outro paragraph.")


def test_split_hard_cut_inside_long_code_line() -> None:
    text = "```\n" + "q" * 500 + "\n```"
    chunks = split_mrkdwn(text, limit=120)
    assert all(len(chunk) <= 120 for chunk in chunks)
    assert all(chunk.count(FENCE) == 2 for chunk in chunks)
    assert strip_fences(chunks) == "q" * 500


def test_split_does_not_end_chunk_with_bare_opening_fence() -> None:
    text = "a" * 80 + "\n```\n" + "b" * 200 + "\n```"
    chunks = split_mrkdwn(text, limit=100)
    assert chunks[0] == "a" * 80
    assert all(len(chunk) <= 100 for chunk in chunks)
    assert all(chunk.count(FENCE) == 2 for chunk in chunks[1:])
    assert strip_fences(chunks) == "a" * 80 + "b" * 200


def _big_markdown() -> str:
    block = (
        "## Section {i}\n\n"
        "Some **bold** text & _italic_ with <!channel> and @here, see "
        "[bank](https://evil.example/{i}) or <https://ok.example/{i}>.\n\n"
        "- item one <@U{i}>\n- item two\n  - nested ~~old~~\n\n"
        "```python\nfor x in range({i}):\n    print(x < {i} and x > 0)\n```\n\n"
        "| col | value |\n|---|---:|\n| a & b | {i} |\n\n"
        "> quoted [x](javascript:alert({i}))\n\n"
    )
    parts: list[str] = []
    i = 0
    while sum(map(len, parts)) < 40_000:
        parts.append(block.format(i=i))
        i += 1
    # One long code block and one very long paragraph to force hard cuts.
    parts.append("```\n" + "\n".join(f"code line {n} <x> &" for n in range(400)) + "\n```\n\n")
    parts.append("word " * 1500)
    return "".join(parts)


def test_large_input_through_convert_and_split() -> None:
    markdown = _big_markdown()
    assert len(markdown) >= 40_000
    out = markdown_to_mrkdwn(markdown)
    chunks = split_mrkdwn(out)
    assert len(chunks) > 10
    for chunk in chunks:
        assert 0 < len(chunk) <= 3000
        assert chunk.count(FENCE) % 2 == 0
        assert_inert(re.sub(r"```.*?```", "", chunk, flags=re.DOTALL))
        assert not re.search(r"&(?!amp;|lt;|gt;)\w*;?$", chunk)
    assert strip_fences(chunks) == re.sub(r"\s|```", "", out)
    joined = "\n".join(chunks)
    assert joined.count("&lt;!channel&gt;") == out.count("&lt;!channel&gt;")
    assert joined.count("code line ") == 400
    assert joined.count("word") == 1500


def test_split_reuses_original_closing_fence() -> None:
    text = "aaaa\n```\n" + "x\n" * 10 + "```\nbbb"
    chunks = split_mrkdwn(text, limit=20)
    assert chunks == ["aaaa\n```\nx\nx\nx\nx\n```", "```\nx\nx\nx\nx\nx\nx\n```", "bbb"]
