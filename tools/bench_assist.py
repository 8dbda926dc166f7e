"""Agent-assist accuracy on the held-out NLU set (tests/nlu/, never trained on), per language, for `make bench`.

For every held-out message whose label is an answer of the knowledge base, the assist ranking (model +
similarity, bot/assist.py) is top-1 correct when its first suggestion is that answer and top-3 correct when one
of the three is. The same is reported for the model's ranking alone and for the similarity alone, so the value
of combining them is visible. Also the time to rank once the model's parse is in (the similarity search).
"""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import aiohttp

from bot.assist import SUGGESTIONS, example_index, rank_answers
from bot.dialogue.knowledge import knowledge_base
from tools.bench_measure import latency_summary
from tools.evaluation import LANGUAGE_FILES, TestExample, load_test_set

RANKINGS = ("assist", "model", "similarity")


async def parse_all(parse_url: str, texts: Sequence[str], concurrency: int = 4) -> List[Optional[Dict]]:
    results: List[Optional[Dict]] = [None] * len(texts)
    queue = list(enumerate(texts))

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            index, text = queue.pop()
            async with session.post(parse_url, json={"text": text}) as response:
                results[index] = await response.json()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return results


def hits(label: str, ranked: List[Tuple[str, float]]) -> Tuple[int, int]:
    keys = [key for key, _ in ranked]
    return int(keys[:1] == [label]), int(label in keys[:SUGGESTIONS])


def score(examples: Sequence[TestExample], parses: Sequence[Optional[Dict]]) -> Dict:
    """Top-1 / top-3 accuracy of each ranking, per language and for all, plus the ranking time."""
    keys = knowledge_base().keys()
    index = example_index()
    counts: Dict[str, Dict[str, List[int]]] = {name: defaultdict(lambda: [0, 0, 0]) for name in RANKINGS}
    timings: List[float] = []
    for example, parse_data in zip(examples, parses, strict=False):
        started = time.perf_counter()
        similarity = index.similarity(example.text)
        rankings = {"assist": rank_answers(parse_data, similarity, keys)}
        timings.append((time.perf_counter() - started) * 1000)
        rankings["model"] = rank_answers(parse_data, {}, keys)
        rankings["similarity"] = rank_answers(None, similarity, keys)
        for name, ranked in rankings.items():
            top1, top3 = hits(example.label, ranked)
            for group in (example.language, "all"):
                tally = counts[name][group]
                tally[0] += 1
                tally[1] += top1
                tally[2] += top3
    report: Dict = {"rank_ms": latency_summary(timings, sum(timings) / 1000 or 1.0)}
    for name in RANKINGS:
        report[name] = {group: {"n": n, "top1": round(t1 / n, 3), "top3": round(t3 / n, 3)}
                        for group, (n, t1, t3) in counts[name].items()}
    return report


def measure_assist(parse_url: str) -> Dict:
    kb = knowledge_base()
    examples = [example for example in load_test_set() if example.label in kb]
    parses = asyncio.run(parse_all(parse_url, [example.text for example in examples]))
    return score(examples, parses)


def format_assist_table(report: Dict) -> List[str]:
    groups = [*LANGUAGE_FILES, "all"]
    lines = ["| ranking | " + " | ".join(f"{g} top-1 / top-3" for g in groups) + " |",
             "|---|" + "---|" * len(groups)]
    for name in RANKINGS:
        cells = [f"{report[name][g]['top1']:.3f} / {report[name][g]['top3']:.3f}" for g in groups
                 if g in report[name]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{g} {report['assist'][g]['n']}" for g in groups if g in report["assist"])
    timing = report["rank_ms"]
    lines.append(f"(n = {sizes}; ranking after the parse: p50 {timing['p50_ms']} ms, p99 {timing['p99_ms']} ms)")
    return lines
