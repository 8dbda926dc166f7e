"""Custom Rasa 3.6 graph components (referenced from config.yml as bot.nlu.components.<Name>).

- ChatNormalizer (first): classifies the normalised text (bot.nlu.text.normalize_message), keeps the raw text.
- FullLabelClassifier (the classifier): a linear classifier over whole answers ("faq/plans", "greet") on
  character and word n-grams, Malay stems and a multilingual sentence embedding; falls back (nlu_fallback) when
  the best answer is unsure or too close to the next.
- InputGuard (after it): unreadable input (empty, emoji only, another script) -> nlu_fallback.
- RetrievalPayloadResolver: button payloads such as "/faq/plans" select that answer directly.
- LanguageTagger: adds entity `language` (en/ms) that fills the `language` slot, or the language asked
  for when the intent is switch_language; nothing when the message is too short to tell.
- UnderstandingRecorder (last): leaves what the message was taken for, and how surely, for the gateway channel
  (bot.nlu.understanding).
"""
from __future__ import annotations

import json
import pickle
import re
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import RESPONSE_SELECTOR_PROPERTY_NAME, RESPONSE_SELECTOR_RETRIEVAL_INTENTS
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.dialogue.fallback import FALLBACK_INTENT
from bot.nlu import language as language_detection
from bot.nlu.input_check import input_problem
from bot.nlu.text import is_payload, normalize_message
from bot.nlu.understanding import RECENT, understanding_from_parse
from bot.vocabulary import SECOND_QUESTION_ENTITY, is_retrieval_answer

RAW_TEXT = "raw_text"
LANGUAGE_ENTITY = "language"
SWITCH_LANGUAGE_INTENT = "switch_language"


def raw_text(message: Message) -> Text:
    """The text as the customer typed it (ChatNormalizer replaces TEXT with the normalised form)."""
    return message.get(RAW_TEXT) if message.get(RAW_TEXT) is not None else (message.get(TEXT) or "")


class _StatelessComponent(GraphComponent):
    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        return cls()


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class ChatNormalizer(_StatelessComponent):
    """Rewrites TEXT to its canonical form before tokenisation; the raw text stays in RAW_TEXT."""

    @staticmethod
    def _normalize(message: Message) -> None:
        text = message.get(TEXT)
        if text is None or message.get(RAW_TEXT) is not None:
            return
        message.set(RAW_TEXT, text)
        if not is_payload(text):
            message.set(TEXT, normalize_message(text))

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            self._normalize(example)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._normalize(message)
        return messages


def _set_intent(message: Message, intent: Text, confidence: float = 1.0) -> None:
    ranked = {"name": intent, "confidence": confidence}
    message.set(INTENT, ranked, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [ranked], add_to_output=True)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class FullLabelClassifier(GraphComponent):
    """Decides which whole answer a message wants ("faq/plans", "greet"), and falls back when it is not sure.

    One logistic regression per answer (bot/nlu/full_label.py) over TF-IDF character n-grams (2-5, within words),
    words (1-2) and Malay stems of the normalised text, and the message's multilingual sentence embedding
    (bot/nlu/sentence_embedding.py) times `embedding_weight`. The answer with the highest score wins, unless
    that score is below `fallback_threshold` (`conversation_threshold` for a conversation intent such as
    goodbye) or within `ambiguity_threshold` of the runner-up, or fewer than
    `min_known_words` of its words (two or more) were ever seen in training, when the message falls back
    (nlu_fallback). The parse keeps Rasa's shape: intent_ranking is the scores summed per intent, and a
    response selector's output for faq/* and support/* holds the scores within each intent, so that intent x
    answer confidence is the answer's score. It replaces DIET, the ResponseSelector and Rasa's
    FallbackClassifier (chosen by cross-validation: README, Measured). A message of several parts whose part
    asks for another answer of the knowledge base gets entity `second_question` (answered after the first)."""

    FILE_NAME = "full_label_classifier.pkl"

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"embedding_weight": 5.0, "embedding_threads": 2, "fallback_threshold": 0.1,
                "conversation_threshold": 0.55, "ambiguity_threshold": 0.0, "min_known_words": 0.5,
                "second_question_threshold": 0.5,
                "regularisation": 50.0, "random_seed": 42}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 classifier: Any = None):
        self.config = {**self.get_default_config(), **config}
        self._model_storage, self._resource = model_storage, resource
        self._classifier = classifier

    @classmethod
    def create(cls, config, model_storage, resource, execution_context) -> "FullLabelClassifier":
        return cls(config, model_storage, resource)

    @classmethod
    def load(cls, config, model_storage, resource, execution_context, **kwargs: Any) -> "FullLabelClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                # Our own model file, written by train() below (a model is trusted like Rasa's own pickles).
                classifier = pickle.loads((directory / cls.FILE_NAME).read_bytes())  # noqa: S301
        except (ValueError, FileNotFoundError):
            classifier = None
        return cls(config, model_storage, resource, classifier)

    def _embed_messages(self, texts: List[Text]) -> List[Tuple[Any, List[Text], Any]]:
        """For each normalised message: its sentence embedding, its question parts (bot/nlu/questions.py) and,
        for a message of several parts, the parts' embeddings. A message of several parts is embedded part by
        part, and its own embedding is theirs combined by token count (sentence_embedding.combine): the
        message's tokens go through the model once instead of twice (once whole, once for its parts)."""
        from bot.nlu.questions import question_parts
        from bot.nlu.sentence_embedding import combine, embed, token_counts

        parts = [question_parts(text) for text in texts]
        embedded = [(own_parts if len(own_parts) >= 2 else [text])
                    for text, own_parts in zip(texts, parts, strict=True)]
        vectors = embed([piece for pieces in embedded for piece in pieces], self.config["embedding_threads"])
        results, start = [], 0
        for text_parts, text_pieces in zip(parts, embedded, strict=True):
            own = vectors[start:start + len(text_pieces)]
            start += len(text_pieces)
            if len(text_pieces) == 1:
                results.append((own[0], text_parts, None))
            else:
                results.append((combine(own, token_counts(text_pieces)), text_parts, own))
        return results

    def train(self, training_data: TrainingData) -> Resource:
        from bot.nlu.full_label import train_full_label_classifier

        examples = [(example.get(TEXT), example.get(INTENT_RESPONSE_KEY) or example.get(INTENT))
                    for example in training_data.intent_examples if example.get(TEXT) and example.get(INTENT)]
        embeddings = [whole for whole, _, _ in self._embed_messages([text for text, _ in examples])]
        self._classifier = train_full_label_classifier(
            examples, embeddings, self.config["embedding_weight"],
            self.config["regularisation"], self.config["random_seed"])
        with self._model_storage.write_to(self._resource) as directory:
            (directory / self.FILE_NAME).write_bytes(pickle.dumps(self._classifier))
        return self._resource

    def process(self, messages: List[Message]) -> List[Message]:
        from bot.nlu.full_label import decide, parse_fields

        for message in messages:
            text = message.get(TEXT)
            if self._classifier is None or not text or is_payload(raw_text(message)):
                continue
            [(embedding, parts, part_embeddings)] = self._embed_messages([text])
            scores = self._classifier.scores(text, embedding)
            best, fell_back = decide(scores, self.config["fallback_threshold"], self.config["ambiguity_threshold"],
                                     self.config["conversation_threshold"])
            # Mostly words never seen in training ("blorf snargle wumpus"): not understood, whatever the scores.
            fell_back = fell_back or self._classifier.known_share(text) < self.config["min_known_words"]
            second = None
            if not fell_back and best is not None:
                best, second = self._two_questions(parts, part_embeddings, best)
            intent, ranking, selector = parse_fields(scores, best)
            if fell_back:
                fallback = {"name": FALLBACK_INTENT, "confidence": self.config["fallback_threshold"]}
                intent, ranking = fallback, [fallback] + ranking
            if second is not None:
                entity = {"entity": SECOND_QUESTION_ENTITY, "value": second, "start": 0,
                          "end": len(raw_text(message)), "confidence": 1.0, "extractor": self.__class__.__name__}
                message.set(ENTITIES, (message.get(ENTITIES) or []) + [entity], add_to_output=True)
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
            message.set(RESPONSE_SELECTOR_PROPERTY_NAME, selector, add_to_output=True)
        return messages

    def _two_questions(self, parts: List[Text], part_embeddings: Any, best: Text) -> Tuple[Text, Optional[Text]]:
        """(first answer, second answer or None): where a part of a message of several parts asks for another
        answer of the knowledge base, scoring `second_question_threshold` or more on that part alone
        (bot/nlu/questions.py), both are answered, in the order the message asks them."""
        from bot.nlu.full_label import order_two_answers

        if part_embeddings is None or not is_retrieval_answer(best):       # one part: one question
            return best, None
        part_scores = [self._classifier.scores(part, vector)
                       for part, vector in zip(parts, part_embeddings, strict=True)]
        return order_two_answers(part_scores, best, self.config["second_question_threshold"])


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class InputGuard(_StatelessComponent):
    """Unreadable input goes to the fallback, which explains politely what we can read."""

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if input_problem(raw_text(message)) is not None:
                _set_intent(message, FALLBACK_INTENT)
                message.set(RESPONSE_SELECTOR_PROPERTY_NAME, {}, add_to_output=True)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class RetrievalPayloadResolver(GraphComponent):
    """Payloads "/<retrieval intent>/<key>" (our quick-reply buttons) select that exact answer.

    Rasa's own "/intent" payloads do not cover retrieval keys. The keys known at training time are stored with
    the model; an unknown payload is left to the normal pipeline (and usually ends in the fallback).
    """

    PAYLOAD_RE = re.compile(r"^\s*/(?P<intent>[A-Za-z_]+)/(?P<key>[A-Za-z0-9_]+)\s*$")
    FILE_NAME = "retrieval_keys.json"

    def __init__(self, model_storage: ModelStorage, resource: Resource, keys: Optional[List[Text]] = None):
        self._model_storage = model_storage
        self._resource = resource
        self._keys = set(keys or [])

    @classmethod
    def create(cls, config, model_storage, resource, execution_context) -> "RetrievalPayloadResolver":
        return cls(model_storage, resource)

    @classmethod
    def load(cls, config, model_storage, resource, execution_context, **kwargs: Any) -> "RetrievalPayloadResolver":
        try:
            with model_storage.read_from(resource) as directory:
                keys = json.loads((directory / cls.FILE_NAME).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            keys = []
        return cls(model_storage, resource, keys)

    def train(self, training_data: TrainingData) -> Resource:
        keys = sorted(
            {
                example.get(INTENT_RESPONSE_KEY)
                for example in training_data.intent_examples
                if example.get(INTENT_RESPONSE_KEY)
            }
        )
        with self._model_storage.write_to(self._resource) as directory:
            (directory / self.FILE_NAME).write_text(json.dumps(keys), encoding="utf-8")
        self._keys = set(keys)
        return self._resource

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            match = self.PAYLOAD_RE.match(raw_text(message))
            if not match:
                continue
            key = f"{match.group('intent')}/{match.group('key')}"
            if key not in self._keys:
                continue
            intent = match.group("intent")
            _set_intent(message, intent)
            selector = dict(message.get(RESPONSE_SELECTOR_PROPERTY_NAME) or {})
            retrieval_intents = selector.get(RESPONSE_SELECTOR_RETRIEVAL_INTENTS) or sorted(
                {known.split("/")[0] for known in self._keys}
            )
            selector[RESPONSE_SELECTOR_RETRIEVAL_INTENTS] = retrieval_intents
            selector[intent] = {
                "response": {
                    "responses": [],
                    "confidence": 1.0,
                    INTENT_RESPONSE_KEY: key,
                    "utter_action": f"utter_{key}",
                },
                "ranking": [{"confidence": 1.0, INTENT_RESPONSE_KEY: key}],
            }
            message.set(RESPONSE_SELECTOR_PROPERTY_NAME, selector, add_to_output=True)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class LanguageTagger(_StatelessComponent):
    """Adds entity `language` = 'en' | 'ms' (see bot.nlu.language for the rule)."""

    def __init__(self) -> None:
        language_detection.warm_up()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = raw_text(message)
            intent = (message.get(INTENT) or {}).get("name")
            detected = None
            if intent == SWITCH_LANGUAGE_INTENT:
                detected = language_detection.requested_language(text)
            if detected is None:
                detected = language_detection.detect_language(text, statistical=intent != FALLBACK_INTENT)
            if detected is None:
                continue
            entity = {
                "entity": LANGUAGE_ENTITY,
                "value": detected,
                "start": 0,
                "end": len(text),
                "confidence": 1.0,
                "extractor": self.__class__.__name__,
            }
            message.set(ENTITIES, (message.get(ENTITIES) or []) + [entity], add_to_output=True)
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class UnderstandingRecorder(_StatelessComponent):
    """Keeps each message's understanding in bot.nlu.understanding.RECENT under its id, for the gateway channel
    to send back with the answer (messages without an id, /model/parse's, are not kept)."""

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            message_id = message.get("message_id")
            if not message_id:
                continue
            understanding = understanding_from_parse({
                "intent": message.get(INTENT),
                "intent_ranking": message.get(INTENT_RANKING_KEY),
                "response_selector": message.get(RESPONSE_SELECTOR_PROPERTY_NAME),
            })
            if understanding is not None:
                RECENT.put(str(message_id), understanding)
        return messages
