"""The benchmark's own bookkeeping (tools/bench_gateway.py): how many Messenger messages an answer makes, and the
fake Graph API that ends a Messenger turn with its last expected message."""
import asyncio

from tools.bench_gateway import FakeGraph, messenger_messages


def test_an_answer_makes_one_send_api_message_per_reply_and_a_long_text_more():
    assert messenger_messages([{"text": "Hello"}, {"custom": {"handoff": "asked"}}]) == 1   # a marker shows nothing
    assert messenger_messages([{"text": "x " * 1500}, {"text": "", "buttons": [{"title": "Yes", "payload": "/y"}]}]) \
        == 3                                                                                 # 3,000 chars → 2
    assert messenger_messages([]) == 0


class Posted:
    def __init__(self, body):
        self.body = body

    async def json(self):
        return self.body


def test_a_messenger_turn_ends_with_its_last_expected_message_or_a_typing_off():
    async def scenario():
        graph = FakeGraph()
        done = graph.expect("42", 2)
        await graph.messages(Posted({"recipient": {"id": "42"}, "sender_action": "typing_on"}))
        await graph.messages(Posted({"recipient": {"id": "42"}, "message": {"text": "one"}}))
        assert not done.is_set()
        await graph.messages(Posted({"recipient": {"id": "42"}, "message": {"text": "two"}}))
        assert done.is_set() and graph.unexpected == 0
        await graph.messages(Posted({"recipient": {"id": "42"}, "message": {"text": "three"}}))
        assert graph.unexpected == 1                          # more than the direct turn predicted: counted
        silent = graph.expect("7", 1)
        await graph.messages(Posted({"recipient": {"id": "7"}, "sender_action": "typing_off"}))
        assert silent.is_set()                                 # the gateway sent nothing and said so

    asyncio.run(scenario())
