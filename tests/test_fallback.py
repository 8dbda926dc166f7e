from bot.dialogue.fallback import CONTACT, SUGGEST, consecutive_misses, fallback_step, payload_for, rank_candidates

KEYS = ["faq/plans", "faq/multiple_plans", "faq/billing_cutoff", "support/feedback", "ask_my_subscription"]


def parse(intents, faq=(), support=()):
    return {
        "intent": {"name": "nlu_fallback", "confidence": 0.45},
        "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.45}]
        + [{"name": name, "confidence": c} for name, c in intents],
        "response_selector": {
            "faq": {"ranking": [{"intent_response_key": k, "confidence": c} for k, c in faq]},
            "support": {"ranking": [{"intent_response_key": k, "confidence": c} for k, c in support]},
        },
    }


def test_consecutive_misses():
    assert consecutive_misses([]) == 0
    assert consecutive_misses(["greet", "nlu_fallback"]) == 1
    assert consecutive_misses(["nlu_fallback", "nlu_fallback"]) == 2
    assert consecutive_misses(["nlu_fallback", "faq", "nlu_fallback"]) == 1
    assert consecutive_misses(["nlu_fallback", "faq"]) == 0
    # unreadable input neither counts nor breaks the run
    assert consecutive_misses(["nlu_fallback", "unreadable", "nlu_fallback"]) == 2
    assert consecutive_misses(["greet", "unreadable", "unreadable"]) == 0


def test_fallback_step():
    assert fallback_step(1) == SUGGEST
    assert fallback_step(2) == CONTACT
    assert fallback_step(5) == CONTACT


def test_rank_candidates_combines_intent_and_selector_confidence():
    data = parse(
        [("faq", 0.4), ("ask_my_subscription", 0.3), ("greet", 0.2)],
        faq=[("faq/plans", 0.9), ("faq/multiple_plans", 0.1)],
    )
    ranked = rank_candidates(data, KEYS)
    assert [key for key, _ in ranked] == ["faq/plans", "ask_my_subscription", "faq/multiple_plans"]
    assert ranked[0][1] == 0.36


def test_rank_candidates_skips_unknown_and_conversation_intents_and_limits():
    data = parse(
        [("support", 0.5), ("faq", 0.3), ("greet", 0.15)],
        faq=[("faq/plans", 0.5), ("faq/billing_cutoff", 0.4), ("faq/unknown", 0.1)],
        support=[("support/feedback", 0.99)],
    )
    ranked = rank_candidates(data, KEYS)
    assert len(ranked) == 3
    assert ranked[0][0] == "support/feedback"
    assert all(key in KEYS for key, _ in ranked)


def test_rank_candidates_drops_negligible_scores():
    data = parse([("faq", 0.01)], faq=[("faq/plans", 1.0)])
    assert rank_candidates(data, KEYS) == []
    assert rank_candidates({}, KEYS) == []


def test_payload_for():
    assert payload_for("faq/plans") == "/faq/plans"
    assert payload_for("ask_my_subscription") == "/ask_my_subscription"
