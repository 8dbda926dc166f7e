"""Customer messages grouped by similarity (rapidfuzz), for the report's top unanswered questions: "how do i
cancel ksos" and "how to cancel my ksos subscription" are one question asked twice; "how do i pay my bill" is
another."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, List, Tuple

from rapidfuzz import fuzz

from bot.nlu.text import normalize_message

SAME_QUESTION = 70          # token_set_ratio of two normalised messages at or above which they are one question


@dataclass
class Group:
    """Messages asking one thing: the first is the group's example (the newest, when fed newest first)."""
    example: str
    members: List[Tuple[str, str]] = field(default_factory=list)     # (key, text), in the order given

    @property
    def count(self) -> int:
        return len(self.members)


def group_similar(messages: Iterable[Tuple[str, str]], threshold: int = SAME_QUESTION) -> List[Group]:
    """(key, text) pairs into groups, greedily: a message joins the first group whose example it is at least
    `threshold` similar to (token_set_ratio on normalised text), else starts its own. Largest groups first, ties
    in the order their examples came."""
    groups: List[Tuple[str, Group]] = []
    for key, text in messages:
        normalised = normalize_message(text)
        for example, group in groups:
            if fuzz.token_set_ratio(normalised, example) >= threshold:
                group.members.append((key, text))
                break
        else:
            groups.append((normalised, Group(text, [(key, text)])))
    ordered = [group for _, group in groups]
    return sorted(ordered, key=lambda group: -group.count)
