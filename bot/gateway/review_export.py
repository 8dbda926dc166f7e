"""`python -m bot review export`: the customer messages agents labelled in the review queue, as a Rasa training
file under data/nlu/ for a person to read and commit (nothing is retrained from live traffic automatically).

Left out, and said so: messages labelled "not covered by our documents"; a message already trained for its label
(nothing to add) or for another label (a person must decide which is right: one text cannot train two intents);
and a message that (nearly) copies one of the evaluation sets (bot/nlu/held_out.py), which would make the
evaluation report on what it was trained on. Each exported message is marked exported, so the next export
writes only newer ones (`--again` writes them all).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bot.dialogue.knowledge import training_examples
from bot.nlu.held_out import all_held_out, near_copy
from bot.nlu.text import normalize_message
from bot.paths import NLU_DIR

HEADER = """\
# Customer messages labelled by agents in the review queue, exported by `python -m bot review export` on {day}.
# Redacted ([email], [phone] ...). Read every line before committing: a wrong label teaches the assistant a
# wrong answer. Then retrain (make train) and check make eval.
version: "3.1"
nlu:
"""


@dataclass
class Export:
    by_label: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    exported_ids: List[int] = field(default_factory=list)
    already_trained: List[Tuple[str, str]] = field(default_factory=list)      # (text, label)
    trained_elsewhere: List[Tuple[str, str, str]] = field(default_factory=list)   # (text, label, trained as)
    held_out: List[str] = field(default_factory=list)     # texts copying an evaluation message (never shown)

    @property
    def count(self) -> int:
        return sum(len(texts) for texts in self.by_label.values())


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def select_for_export(labelled: Sequence[Tuple[int, str, str, Optional[str]]],
                      trained: Dict[str, List[str]], held_out: Sequence[str]) -> Export:
    """Which labelled (id, text, label, language) go to the file; `trained`: label -> training examples."""
    trained_as = {normalize_message(text): label for label, texts in trained.items() for text in texts}
    export = Export()
    for item_id, text, label, _language in labelled:
        text = one_line(text)
        key = normalize_message(text)
        if not key:
            continue
        known = trained_as.get(key)
        if known is not None and known != label:
            export.trained_elsewhere.append((text, label, known))      # waits for a person: not marked exported
            continue
        if known == label:
            export.already_trained.append((text, label))
        else:
            if near_copy(text, held_out) is not None:
                export.held_out.append(text)
            else:
                trained_as[key] = label
                export.by_label[label].append(text)
        export.exported_ids.append(item_id)
    return export


def training_file(export: Export, day: date) -> str:
    lines = [HEADER.format(day=day.isoformat())]
    for label in sorted(export.by_label):
        lines.append(f"- intent: {label}\n  examples: |\n")
        lines.extend(f"    - {text}\n" for text in export.by_label[label])
    return "".join(lines)


def free_path(folder: Path, day: date) -> Path:
    path = folder / f"reviewed_{day.isoformat()}.yml"
    number = 2
    while path.exists():
        path = folder / f"reviewed_{day.isoformat()}_{number}.yml"
        number += 1
    return path


def cmd_review(args: argparse.Namespace) -> int:
    from bot.clock import today
    from bot.gateway.review import ReviewQueue
    from bot.gateway.store import GatewayStore
    from bot.settings import load_settings

    store = GatewayStore(load_settings().database_url)
    try:
        queue = ReviewQueue(store)
        export = select_for_export(queue.labelled(include_exported=args.again), training_examples(), all_held_out())
        for text, label in export.already_trained:
            print(f"already trained as {label}: {text!r}")
        for text, label, known in export.trained_elsewhere:
            print(f"left out, labelled {label} but trained as {known} (decide which is right): {text!r}")
        for text in export.held_out:
            print(f"left out, a near-copy of an evaluation message: {text!r}")
        if not export.count:
            print("Nothing new to export: label messages in the agent console's review queue first.")
            queue.mark_exported(export.exported_ids)
            return 0
        day = today()
        path = Path(args.out) if args.out else free_path(NLU_DIR, day)
        if path.exists():
            print(f"{path} exists: choose another --out", file=sys.stderr)
            return 1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(training_file(export, day), encoding="utf-8")
        queue.mark_exported(export.exported_ids)
        print(f"Wrote {export.count} reviewed message(s) for {len(export.by_label)} label(s) to {path}.")
        print("Read it, commit it, then make train and make eval. Nothing was retrained.")
        return 0
    finally:
        store.dispose()


def add_parser(commands) -> None:
    review = commands.add_parser("review", help="the agents' review queue")
    sub = review.add_subparsers(dest="review_command", required=True)
    export = sub.add_parser("export", help="write the labelled messages to a training file under data/nlu/")
    export.add_argument("--out", default=None, help="write here instead (default data/nlu/reviewed_DATE.yml)")
    export.add_argument("--again", action="store_true", help="also the messages an earlier export wrote")
    review.set_defaults(func=cmd_review)
