"""tools/capture_conversation.py: how a captured conversation is written for the README."""
from tools.capture_conversation import markdown_lines, newest_code, shown


def test_a_message_keeps_its_lines_and_blank_lines_as_markdown_breaks():
    assert markdown_lines("Customer", "hi") == ["**Customer:** hi  "]
    assert markdown_lines("Assistant", "Plans:\n\n• Starter\nContract") == \
        ["**Assistant:** Plans:  ", "  ", "• Starter  ", "Contract  "]


def test_an_answer_shows_its_buttons_and_source_line_and_who_speaks():
    entry = {"role": "bot", "text": "Verify?", "buttons": [{"title": "Yes", "payload": "/affirm"},
                                                          {"title": "No", "payload": "/deny"}],
             "source_line": "Source: KSOS FAQ (Unifi, Aug 2023)"}
    assert shown(entry) == ["**Assistant:** Verify?  ", "[buttons: Yes | No]  ",
                            "*Source: KSOS FAQ (Unifi, Aug 2023)*  "]
    assert shown({"role": "notice", "text": "Aisyah joined"}) == ["**Notice:** Aisyah joined  "]


def test_the_code_is_the_newest_one_written_after_the_mark(tmp_path):
    log = tmp_path / "outbox.log"
    assert newest_code(log, 0) is None
    log.write_text("--- to a: x\nYour Unifi verification code is 111111. It is valid\n", encoding="utf-8")
    mark = log.stat().st_size
    assert newest_code(log, mark) is None and newest_code(log, 0) == "111111"
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("--- to a: x\nYour Unifi verification code is 222222. It is valid\n")
    assert newest_code(log, mark) == "222222"
