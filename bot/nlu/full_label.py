"""The whole-answer classifier and the blend FullLabelClassifier (bot/nlu/components.py) makes of it with DIET.

Plain functions on plain data (no Rasa import), so that they are unit-tested on their own: a "label" is a whole
answer, "faq/plans" for an answer of a retrieval intent, the intent's name ("greet") otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from bot.vocabulary import DEFAULT_SELECTOR, RETRIEVAL_INTENTS

RANKING_LENGTH = 10
SELECTOR_KEYS = ("all_retrieval_intents",)
WORD = re.compile(r"[a-z]{2,}")


@dataclass
class FullLabelModel:
    """TF-IDF character n-grams (2-5, within words) and words (1-2) of the normalised text, into one logistic
    regression per label (liblinear, one against the rest: trains in about 2 s where a multinomial one took
    30 s, as accurate in cross-validation), whose outputs are normalised to sum to 1. Scored with numpy directly:
    scikit-learn's predict_proba costs 5 ms a message in checks, the arithmetic 0.03 ms."""
    features: Any
    weights: Any            # (features, labels)
    intercepts: Any         # (labels,)
    labels: Tuple[str, ...]
    known_words: FrozenSet[str] = frozenset()     # the words of the training examples

    def known_share(self, text: str) -> float:
        """The share of a message's words (two letters or more) seen in training; 1.0 below two words."""
        words = WORD.findall(text)
        return sum(word in self.known_words for word in words) / len(words) if len(words) >= 2 else 1.0

    def scores(self, text: str) -> Dict[str, float]:
        import numpy as np

        margins = np.asarray(self.features.transform([text]) @ self.weights).ravel() + self.intercepts
        probabilities = 1.0 / (1.0 + np.exp(-margins))
        probabilities /= probabilities.sum()
        return {label: float(probability) for label, probability in zip(self.labels, probabilities, strict=True)}


def train_full_label_classifier(examples: Sequence[Tuple[str, str]], regularisation: float = 20.0,
                                seed: int = 42) -> FullLabelModel:
    """(normalised text, label) pairs -> the fitted model."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_union

    features = make_union(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+"),
    )
    texts, labels = [text for text, _ in examples], [label for _, label in examples]
    classifier = LogisticRegression(C=regularisation, solver="liblinear", random_state=seed)
    classifier.fit(features.fit_transform(texts), labels)
    weights, intercepts = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:           # one column for two labels: the second's margin, the first's is -
        weights, intercepts = np.vstack([-weights, weights]), np.concatenate([-intercepts, intercepts])
    known = frozenset(word for text in texts for word in WORD.findall(text))
    return FullLabelModel(features, np.ascontiguousarray(weights.T), np.asarray(intercepts),
                          tuple(str(label) for label in classifier.classes_), known)


def _confidence(entry: Mapping[str, Any]) -> float:
    value = entry.get("confidence")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def answer_ranking(selector: Mapping[str, Any], intent: str) -> Dict[str, float]:
    """The response selector's P(answer | intent) for a retrieval intent: its own selector's ranking, or the
    answers of that intent in the ranking of one selector for all of them ("default"), renormalised."""
    picked = selector.get(intent) if isinstance(selector.get(intent), Mapping) else selector.get(DEFAULT_SELECTOR)
    if not isinstance(picked, Mapping):
        return {}
    ranking = {response.get("intent_response_key"): _confidence(response) for response in picked.get("ranking") or []
               if isinstance(response.get("intent_response_key"), str)
               and base_intent(response["intent_response_key"]) == intent}
    total = sum(ranking.values())
    return {key: value / total for key, value in ranking.items()} if total > 0 else {}


def diet_scores(intent_ranking: Iterable[Mapping[str, Any]], selector: Mapping[str, Any]) -> Dict[str, float]:
    """Per label: DIET's intent confidence, times the response selector's confidence for an answer of a
    retrieval intent (the rankings Rasa keeps: the top 10 of each)."""
    scores: Dict[str, float] = {}
    for ranked in intent_ranking:
        intent, confidence = ranked.get("name"), _confidence(ranked)
        if not isinstance(intent, str):
            continue
        if intent in RETRIEVAL_INTENTS:
            for key, share in answer_ranking(selector, intent).items():
                scores[key] = scores.get(key, 0.0) + confidence * share
        else:
            scores[intent] = scores.get(intent, 0.0) + confidence
    return scores


def blend(diet: Mapping[str, float], lexical: Mapping[str, float], lexical_weight: float) -> Dict[str, float]:
    labels = set(diet) | set(lexical)
    return {label: (1 - lexical_weight) * diet.get(label, 0.0) + lexical_weight * lexical.get(label, 0.0)
            for label in labels}


def decide(scores: Mapping[str, float], fallback_threshold: float, ambiguity_threshold: float
           ) -> Tuple[Optional[str], bool]:
    """(the best label, whether to fall back): below the threshold, or within the ambiguity of the second."""
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if not ranked:
        return None, True
    best, score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    return best, score < fallback_threshold or score - runner_up < ambiguity_threshold


def base_intent(label: str) -> str:
    return label.split("/", 1)[0]


def parse_fields(scores: Mapping[str, float], best: Optional[str], selector: Mapping[str, Any]
                 ) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Dict[str, Any]]:
    """The intent, intent ranking and response selector output for blended `scores`, in Rasa's shape: an
    intent's confidence is the sum of its labels' scores, a response's the share of its intent's; `best`'s
    intent comes first, and each retrieval intent's response is its best answer (`best` for its own)."""
    totals: Dict[str, float] = {}
    for label, score in scores.items():
        totals[base_intent(label)] = totals.get(base_intent(label), 0.0) + score
    chosen = base_intent(best) if best else None
    order = sorted(totals, key=lambda intent: (intent != chosen, -totals[intent], intent))
    ranking = [{"name": intent, "confidence": totals[intent]} for intent in order[:RANKING_LENGTH]]
    intent = dict(ranking[0]) if ranking else {"name": None, "confidence": 0.0}
    output: Dict[str, Any] = {key: selector[key] for key in SELECTOR_KEYS if key in selector}
    for retrieval in RETRIEVAL_INTENTS:
        total = totals.get(retrieval, 0.0)
        answers = sorted(((label, score) for label, score in scores.items() if base_intent(label) == retrieval
                          and label != retrieval), key=lambda item: (-item[1], item[0]))
        old = selector.get(retrieval)
        if total <= 0 or not answers:
            if isinstance(old, Mapping):
                output[retrieval] = dict(old)
            continue
        top = best if best and base_intent(best) == retrieval and "/" in best else answers[0][0]
        previous: Mapping[str, Any] = {}
        if isinstance(old, Mapping) and isinstance(old.get("response"), Mapping):
            previous = old["response"]
        response = {
            "responses": previous.get("responses", []) if previous.get("intent_response_key") == top else [],
            "confidence": scores[top] / total,
            "intent_response_key": top,
            "utter_action": f"utter_{top}",
        }
        output[retrieval] = {"response": response, "ranking": [
            {"confidence": score / total, "intent_response_key": label} for label, score in answers[:RANKING_LENGTH]]}
    if DEFAULT_SELECTOR in selector:           # one selector for all: its answer is the chosen intent's
        output[DEFAULT_SELECTOR] = output.get(chosen or "", selector[DEFAULT_SELECTOR])
    return intent, ranking, output
