"""`make shell` (bot/cli/shell.py) without a server: what is printed and sent for what the user types."""
from bot.cli import shell


def test_buttons_are_numbered_and_a_number_sends_the_payload(monkeypatch):
    printed, sent = [], []
    answers = iter([
        [{"text": "Did you mean…?", "buttons": [{"title": "Plans", "payload": "/faq/plans"},
                                                 {"title": "None of these", "payload": "/deny"}]}],
        [{"text": "Starter RM30 a month\n\nStandard RM125 a month"}],
        [{"text": "Sure."}],
    ])
    monkeypatch.setattr(shell, "send", lambda settings, sender, text: sent.append(text) or next(answers))
    typed = iter(["plens", "1", "   ", "3", "/stop"])
    assert shell.talk(None, read=lambda prompt: next(typed), write=printed.append, sender="me") == 0
    assert sent == ["plens", "/faq/plans", "3"]          # "3" is no button of the last answer: sent as words
    assert "     1. Plans" in printed and "     2. None of these" in printed
    assert "Bot: Starter RM30 a month\n\nStandard RM125 a month" in printed


def test_ctrl_d_ends_and_an_unreachable_assistant_is_reported(monkeypatch):
    printed = []

    def refused(settings, sender, text):
        raise OSError("connection refused")

    monkeypatch.setattr(shell, "send", refused)
    typed = iter(["hello"])

    def read(prompt):
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    assert shell.talk(None, read=read, write=printed.append, sender="me") == 0
    assert any("did not answer" in line for line in printed)
