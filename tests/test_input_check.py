import pytest

from bot.nlu.input_check import EMPTY, NO_WORDS, UNSUPPORTED_SCRIPT, input_problem


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", EMPTY),
        (None, EMPTY),
        ("   \n\t", EMPTY),
        ("<br><p></p>", EMPTY),
        ("👍👍", NO_WORDS),
        ("???!!!", NO_WORDS),
        ("😡😡😡 !!!", NO_WORDS),
        ("你好，我想问价格", UNSUPPORTED_SCRIPT),
        ("வணக்கம்", UNSUPPORTED_SCRIPT),
        ("مرحبا كيف حالك", UNSUPPORTED_SCRIPT),
        ("hello", None),
        ("berapa harga?", None),
        ("12", None),
        ("ksos 你好 price for professional", None),
        ("<script>alert(1)</script> harga", None),
        ("x" * 5000, None),
    ],
)
def test_input_problem(text, expected):
    assert input_problem(text) == expected
