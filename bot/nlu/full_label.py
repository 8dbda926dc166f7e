"""The whole-answer classifier of FullLabelClassifier (bot/nlu/components.py), on plain data.

Plain functions (no Rasa import), so that they are unit-tested on their own: a "label" is a whole answer,
"faq/plans" for an answer of a retrieval intent, the intent's name ("greet") otherwise. The sentence embedding a
message gets (bot/nlu/sentence_embedding.py) is passed in, so that this module does not load the model itself.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from bot.nlu.stemming import stems
from bot.vocabulary import ACCOUNT_INTENTS, RETRIEVAL_INTENTS, is_retrieval_answer

RANKING_LENGTH = 10
RETRIEVAL_INTENTS_KEY = "all_retrieval_intents"       # Rasa's key: which intents the response selector answers
WORD = re.compile(r"[a-z]{2,}")


@dataclass(frozen=True)
class _TfidfBlock:
    """One fitted TfidfVectorizer of the union (sublinear tf, l2 norm), as plain lookups: its analyzer, the
    column of each of its terms (offset into the union's columns) and each column's idf."""
    analyzer: Callable[[str], List[str]]
    columns: Dict[str, int]
    idf: Dict[int, float]

    def features(self, text: str) -> Dict[int, float]:
        counts = Counter(column for column in map(self.columns.get, self.analyzer(text)) if column is not None)
        values = {column: (1.0 + math.log(count)) * self.idf[column] for column, count in counts.items()}
        norm = math.sqrt(sum(value * value for value in values.values()))
        return {column: value / norm for column, value in values.items()} if norm > 0 else {}


def _tfidf_blocks(features: Any) -> Tuple[_TfidfBlock, ...]:
    """The fitted union's vectorizers as _TfidfBlocks (what `features.transform` computes, without its checks:
    1 ms a message of scikit-learn's validation against 0.1 ms; tests/test_full_label.py compares the two)."""
    blocks, offset = [], 0
    for _, vectorizer in features.transformer_list:
        vocabulary = vectorizer.vocabulary_
        if not (vectorizer.sublinear_tf and vectorizer.norm == "l2" and vectorizer.use_idf):
            raise ValueError(f"only sublinear, l2-normalised TF-IDF is computed directly, not {vectorizer}")
        blocks.append(_TfidfBlock(vectorizer.build_analyzer(),
                                  {term: offset + column for term, column in vocabulary.items()},
                                  {offset + column: float(idf) for column, idf in enumerate(vectorizer.idf_)}))
        offset += len(vocabulary)
    return tuple(blocks)


@dataclass
class FullLabelModel:
    """TF-IDF character n-grams (2-5, within words), words (1-2) and Malay stems of the normalised text, and the
    message's sentence embedding times `embedding_weight`, into one logistic regression per label (liblinear, one
    against the rest), whose outputs are normalised to sum to 1. Scored with numpy directly: scikit-learn's
    predict_proba costs 5 ms a message in checks, the arithmetic 0.03 ms."""
    features: Any
    weights: Any            # (sparse features, labels)
    embedding_weights: Any  # (embedding dimensions, labels)
    intercepts: Any         # (labels,)
    labels: Tuple[str, ...]
    embedding_weight: float
    known_words: FrozenSet[str] = frozenset()     # the words of the training examples
    _blocks: Tuple[_TfidfBlock, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        self._blocks = _tfidf_blocks(self.features)

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "_blocks": ()}       # not stored: rebuilt from `features` when loaded

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def sparse_margins(self, text: str) -> Any:
        """The sparse features' share of each label's margin, (labels,) float64: the TF-IDF vector's dot product
        with `weights`, over the message's own terms only."""
        import numpy as np

        columns: List[int] = []
        values: List[float] = []
        for block in self._blocks:
            for column, value in block.features(text).items():
                columns.append(column)
                values.append(value)
        if not columns:
            return np.zeros(len(self.labels))
        return np.asarray(values) @ self.weights[columns]

    def known_share(self, text: str) -> float:
        """The share of a message's words (two letters or more) seen in training; 1.0 below two words."""
        words = WORD.findall(text)
        return sum(word in self.known_words for word in words) / len(words) if len(words) >= 2 else 1.0

    def scores(self, text: str, embedding: Any) -> Dict[str, float]:
        """P(label) for the normalised `text` and its sentence embedding (a unit vector)."""
        import numpy as np

        margins = (self.sparse_margins(text)
                   + self.embedding_weight * np.asarray(embedding, dtype=np.float64) @ self.embedding_weights
                   + self.intercepts)
        probabilities = 1.0 / (1.0 + np.exp(-margins))
        probabilities /= probabilities.sum()
        return {label: float(probability) for label, probability in zip(self.labels, probabilities, strict=True)}


def text_features() -> Any:
    """The sparse half of the features, unfitted."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+"),
        TfidfVectorizer(analyzer=stems, sublinear_tf=True),
    )


def train_full_label_classifier(examples: Sequence[Tuple[str, str]], embeddings: Any, embedding_weight: float,
                                regularisation: float = 50.0, seed: int = 42) -> FullLabelModel:
    """(normalised text, label) pairs and each text's sentence embedding (rows of `embeddings`) -> the model."""
    import numpy as np
    import scipy.sparse
    from sklearn.linear_model import LogisticRegression

    features = text_features()
    texts, labels = [text for text, _ in examples], [label for _, label in examples]
    sparse = features.fit_transform(texts)
    dense = scipy.sparse.csr_matrix(embedding_weight * np.asarray(embeddings, dtype=np.float64))
    classifier = LogisticRegression(C=regularisation, solver="liblinear", random_state=seed)
    classifier.fit(scipy.sparse.hstack([sparse, dense]).tocsr(), labels)
    weights, intercepts = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:           # one column for two labels: the second's margin, the first's is -
        weights, intercepts = np.vstack([-weights, weights]), np.concatenate([-intercepts, intercepts])
    weights = np.ascontiguousarray(weights.T)
    known = frozenset(word for text in texts for word in WORD.findall(text))
    return FullLabelModel(features, weights[:sparse.shape[1]], weights[sparse.shape[1]:], np.asarray(intercepts),
                          tuple(str(label) for label in classifier.classes_), embedding_weight, known)


def is_conversational(label: str) -> bool:
    """A conversation intent ("goodbye", "request_human", "switch_language" ...): neither an answer of the
    knowledge base nor an account question."""
    return not is_retrieval_answer(label) and label not in RETRIEVAL_INTENTS and label not in ACCOUNT_INTENTS


def decide(scores: Mapping[str, float], fallback_threshold: float, ambiguity_threshold: float,
           conversation_threshold: float = 0.0) -> Tuple[Optional[str], bool]:
    """(the best label, whether to fall back): below the threshold, or within the ambiguity of the second. A
    conversation intent needs `conversation_threshold` (if higher): answered wrongly, it says goodbye, hands
    over or switches language, where a fallback offers the likely answers."""
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if not ranked:
        return None, True
    best, score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    threshold = max(fallback_threshold, conversation_threshold) if is_conversational(best) else fallback_threshold
    return best, score < threshold or score - runner_up < ambiguity_threshold


def order_two_answers(part_scores: Sequence[Mapping[str, float]], first: str, threshold: float
                      ) -> Tuple[str, Optional[str]]:
    """A message's parts' scores -> (first answer, second answer or None). The second is the surest answer of
    the knowledge base, other than `first` (the whole message's), that is a part's best and scores `threshold` or
    more there; the two are put in the order of their parts (`first` where no part's best is it: first)."""
    bests = [max(scores.items(), key=lambda item: (item[1], item[0])) if scores else ("", 0.0)
             for scores in part_scores]
    candidates = [(score, index, label) for index, (label, score) in enumerate(bests)
                  if is_retrieval_answer(label) and label != first and score >= threshold]
    if not candidates:
        return first, None
    _, second_at, second = max(candidates)
    first_at = next((index for index, (label, _) in enumerate(bests) if label == first), -1)
    return (second, first) if second_at < first_at else (first, second)


def base_intent(label: str) -> str:
    return label.split("/", 1)[0]


def parse_fields(scores: Mapping[str, float], best: Optional[str]
                 ) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Dict[str, Any]]:
    """The intent, intent ranking and response selector output for `scores`, in Rasa's shape: an intent's
    confidence is the sum of its labels' scores, a response's the share of its intent's; `best`'s intent comes
    first, and each retrieval intent's response is its best answer (`best` for its own), which Rasa's
    utter_faq / utter_support take from the domain by its `utter_action`."""
    totals: Dict[str, float] = {}
    for label, score in scores.items():
        totals[base_intent(label)] = totals.get(base_intent(label), 0.0) + score
    chosen = base_intent(best) if best else None
    order = sorted(totals, key=lambda intent: (intent != chosen, -totals[intent], intent))
    ranking = [{"name": intent, "confidence": totals[intent]} for intent in order[:RANKING_LENGTH]]
    intent = dict(ranking[0]) if ranking else {"name": None, "confidence": 0.0}
    output: Dict[str, Any] = {RETRIEVAL_INTENTS_KEY: list(RETRIEVAL_INTENTS)}
    for retrieval in RETRIEVAL_INTENTS:
        total = totals.get(retrieval, 0.0)
        answers = sorted(((label, score) for label, score in scores.items() if base_intent(label) == retrieval
                          and label != retrieval), key=lambda item: (-item[1], item[0]))
        if total <= 0 or not answers:
            continue
        top = best if best and base_intent(best) == retrieval and is_retrieval_answer(best) else answers[0][0]
        response = {"responses": [], "confidence": scores[top] / total, "intent_response_key": top,
                    "utter_action": f"utter_{top}"}
        output[retrieval] = {"response": response, "ranking": [
            {"confidence": score / total, "intent_response_key": label} for label, score in answers[:RANKING_LENGTH]]}
    return intent, ranking, output
