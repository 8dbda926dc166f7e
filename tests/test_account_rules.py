"""Business rules at their edges: month ends, 29 February, exactly 12 months, same-day termination."""
from datetime import date, datetime
from decimal import Decimal

import pytest

from bot.accounts.catalogue import catalogue
from bot.accounts.rules import (
    Device,
    add_months,
    billing_period,
    contract_end,
    devices_losing_protection,
    downgrade_impact,
    next_bill_date,
    plan_change_check,
    prorated_charge,
    remaining_contract_months,
    termination_penalty,
)

MONTHS = catalogue().contract_months       # 12, FAQ 2 / FAQ 20 (resources/accounts/plans.yml)


@pytest.mark.parametrize("start, months, expected", [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),      # leap year
    (date(2028, 2, 29), 12, date(2029, 2, 28)),     # 29 February + 12 months
    (date(2026, 3, 31), -1, date(2026, 2, 28)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),
    (date(2026, 1, 15), -13, date(2024, 12, 15)),
])
def test_add_months_clamps_to_the_month_end(start, months, expected):
    assert add_months(start, months) == expected


def test_contract_end_is_twelve_months_after_the_start():
    assert contract_end(date(2026, 5, 12), MONTHS) == date(2027, 5, 12)
    assert contract_end(date(2024, 2, 29), MONTHS) == date(2025, 2, 28)


@pytest.mark.parametrize("on, remaining", [
    (date(2026, 1, 10), 12),    # same-day termination: the whole contract is left
    (date(2026, 1, 11), 12),    # one day in: a part month counts as a full month
    (date(2026, 2, 10), 11),    # exactly one month in
    (date(2026, 2, 11), 11),
    (date(2026, 12, 9), 2),     # a month and a day left: the part month counts
    (date(2026, 12, 10), 1),    # 11 months in exactly: one full month left
    (date(2027, 1, 9), 1),      # the last day of the contract
    (date(2027, 1, 10), 0),     # exactly 12 months: no penalty
    (date(2028, 6, 1), 0),
    (date(2025, 12, 1), 12),    # before the start (a future start date)
])
def test_remaining_contract_months(on, remaining):
    assert remaining_contract_months(date(2026, 1, 10), on, MONTHS) == remaining


def test_remaining_months_from_a_month_end_start():
    start = date(2026, 1, 31)
    assert remaining_contract_months(start, date(2026, 2, 28), MONTHS) == 11   # a month later (clamped)
    assert remaining_contract_months(start, date(2026, 2, 27), MONTHS) == 12
    assert remaining_contract_months(start, date(2027, 1, 30), MONTHS) == 1
    assert remaining_contract_months(start, date(2027, 1, 31), MONTHS) == 0


def test_remaining_months_from_29_february():
    start = date(2028, 2, 29)
    assert contract_end(start, MONTHS) == date(2029, 2, 28)
    assert remaining_contract_months(start, date(2029, 2, 27), MONTHS) == 1
    assert remaining_contract_months(start, date(2029, 2, 28), MONTHS) == 0
    assert remaining_contract_months(start, date(2028, 3, 29), MONTHS) == 11


def test_penalty_is_fee_times_remaining_months():
    penalty = termination_penalty("125.00", date(2026, 5, 12), date(2026, 11, 22), MONTHS)
    assert penalty.months_remaining == 6 and penalty.amount == Decimal("750.00") and penalty.applies
    assert penalty.contract_end == date(2027, 5, 12)


def test_penalty_same_day_and_after_twelve_months():
    same_day = termination_penalty(Decimal("200"), date(2026, 11, 22), date(2026, 11, 22), MONTHS)
    assert same_day.amount == Decimal("2400.00")
    after = termination_penalty(Decimal("30"), date(2025, 11, 22), date(2026, 11, 22), MONTHS)
    assert after.amount == Decimal("0.00") and after.months_remaining == 0 and not after.applies


def test_penalty_restarts_with_a_plan_change():
    # Subscribed 18 months ago, changed plan 2 months and 15 days ago: the new contract has 10 months left.
    assert termination_penalty("125", date(2026, 9, 7), date(2026, 11, 22), MONTHS).amount == Decimal("1250.00")


@pytest.mark.parametrize("on, period", [
    (date(2026, 11, 22), (date(2026, 11, 22), date(2026, 12, 22))),
    (date(2026, 11, 21), (date(2026, 10, 22), date(2026, 11, 22))),
    (date(2026, 1, 5), (date(2025, 12, 22), date(2026, 1, 22))),
])
def test_billing_period(on, period):
    assert billing_period(on, 22) == period


def test_billing_period_with_a_bill_day_the_month_lacks():
    assert billing_period(date(2026, 2, 28), 31) == (date(2026, 2, 28), date(2026, 3, 31))
    assert billing_period(date(2026, 3, 15), 31) == (date(2026, 2, 28), date(2026, 3, 31))


def test_next_bill_date():
    assert next_bill_date(date(2026, 11, 22), 22) == date(2026, 11, 22)
    assert next_bill_date(date(2026, 11, 23), 22) == date(2026, 12, 22)
    assert next_bill_date(date(2026, 12, 23), 22) == date(2027, 1, 22)
    assert next_bill_date(date(2026, 2, 1), 31) == date(2026, 2, 28)


def test_proration_by_days():
    # Standard (RM125) from 2 Dec in the period 22 Nov – 22 Dec (30 days): 20 days charged.
    charge = prorated_charge("125", date(2026, 12, 2), 22)
    assert (charge.days_charged, charge.days_in_period) == (20, 30)
    assert charge.amount == Decimal("83.33")


def test_proration_on_the_bill_day_is_the_full_fee_and_february_is_short():
    assert prorated_charge("30", date(2026, 11, 22), 22).amount == Decimal("30.00")
    charge = prorated_charge("30", date(2027, 2, 21), 22)      # period 22 Jan – 22 Feb: 31 days, 1 charged
    assert (charge.days_charged, charge.days_in_period, charge.amount) == (1, 31, Decimal("0.97"))
    leap = prorated_charge("200", date(2028, 2, 29), 1)        # period 1 Feb – 1 Mar 2028: 29 days, 1 charged
    assert (leap.days_charged, leap.days_in_period, leap.amount) == (1, 29, Decimal("6.90"))


def _devices(kind, count, start_day=1):
    return [Device(kind, f"{kind}-{i}", datetime(2026, 1, start_day + i, 9, 0)) for i in range(count)]


def test_downgrade_keeps_the_first_connected_devices_per_type():
    plans = catalogue()
    devices = list(reversed(_devices("desktop", 8))) + _devices("mobile", 5) + _devices("file_server", 2)
    impacts = {i.type: i for i in downgrade_impact(devices, plans.plan("Starter").allowances, plans.device_types)}
    assert [d.name for d in impacts["desktop"].kept] == [f"desktop-{i}" for i in range(5)]
    assert [d.name for d in impacts["desktop"].losing_protection] == ["desktop-5", "desktop-6", "desktop-7"]
    assert impacts["mobile"].losing_protection == ()       # exactly at the allowance
    assert [d.name for d in impacts["file_server"].losing_protection] == ["file_server-1"]
    assert impacts["password_manager"].kept == ()
    assert len(devices_losing_protection(impacts.values())) == 4


def test_upgrade_loses_nothing():
    plans = catalogue()
    impacts = downgrade_impact(_devices("desktop", 20), plans.plan("Professional").allowances, plans.device_types)
    assert devices_losing_protection(impacts) == []


def test_plan_change_refused_while_suspended_with_the_amount_to_settle():
    check = plan_change_check("suspended", Decimal("250"))
    assert not check.allowed and check.reason == "suspended" and check.amount_to_settle == Decimal("250.00")
    assert plan_change_check("active", 0).allowed
    assert not plan_change_check("terminated", 0).allowed


def test_catalogue_matches_faq_2():
    plans = catalogue()
    assert plans.source == "FAQ 2" and plans.contract_months == 12 and plans.default_bill_day == 22
    assert [(p.name, str(p.monthly_fee)) for p in plans.plans.values()] == [
        ("Starter", "30.00"), ("Standard", "125.00"), ("Professional", "200.00")]
    assert plans.plan("professional").allowances == {
        "desktop": 50, "mobile": 50, "password_manager": 50, "vpn": 50, "file_server": 3}
    assert plans.plan("Standard").allowances["file_server"] == 2
    assert [p.name for p in plans.smaller_plans(plans.plan("Professional"))] == ["Standard", "Starter"]


# --- operator policy (resources/accounts/policy.yml): what the FAQ leaves open ---------------------------------

@pytest.mark.parametrize("on, round_up, whole_months", [
    (date(2026, 1, 10), 12, 12),    # on the start day nothing has started yet: the same either way
    (date(2026, 1, 11), 12, 11),    # one day in: a started month counts, or only the 11 whole months left
    (date(2026, 2, 10), 11, 11),    # exactly a month in: the same either way
    (date(2027, 1, 9), 1, 0),       # the contract's last day
    (date(2027, 1, 10), 0, 0),      # over: no penalty either way (FAQ 32)
])
def test_the_part_month_rule_is_the_policy_files_choice(on, round_up, whole_months):
    assert remaining_contract_months(date(2026, 1, 10), on, MONTHS, "round_up") == round_up
    assert remaining_contract_months(date(2026, 1, 10), on, MONTHS, "whole_months") == whole_months
    assert termination_penalty("30", date(2026, 1, 10), on, MONTHS, "whole_months").amount == 30 * whole_months
    with pytest.raises(ValueError):
        remaining_contract_months(date(2026, 1, 10), date(2026, 1, 11), MONTHS, "nearest")


def test_the_shipped_policy_names_each_rule_and_explains_it_in_both_languages():
    from bot.accounts.policy import load_policy

    shipped = load_policy()
    assert (shipped.part_month.name, shipped.proration.name, shipped.downgrade_devices.name) == (
        "round_up", "by_days", "first_connected_per_type")
    assert shipped.faq_downgrade == ("standard", "starter")                  # the change FAQ 19 describes
    assert set(shipped.faq_downgrade) <= set(catalogue().plans)
    for rule in (shipped.part_month, shipped.proration, shipped.downgrade_devices):
        assert rule.explained("en") != rule.explained("ms") and "FAQ" not in rule.explained("en")


@pytest.mark.parametrize("broken, complaint", [
    ("part_month: {rule: nearest, explain: {en: x, ms: y}}", "part_month.rule must be one of round_up, whole_months"),
    ("part_month: {rule: round_up, explain: {en: x}}", "part_month.explain needs a text in ms"),
])
def test_a_policy_file_with_an_unknown_rule_or_a_missing_language_is_refused(tmp_path, broken, complaint):
    from bot.accounts.policy import InvalidPolicy, load_policy

    good = ("proration: {rule: by_days, explain: {en: a, ms: b}}\n"
            "downgrade_devices: {rule: first_connected_per_type, explain: {en: a, ms: b}}\n")
    path = tmp_path / "policy.yml"
    path.write_text(broken + "\n" + good)
    with pytest.raises(InvalidPolicy, match=complaint):
        load_policy(path)


def test_a_downgrade_the_faq_does_not_describe_is_labelled_policy():
    import yaml

    from bot.accounts.answers import downgrade_note, renderer
    from bot.accounts.store import SubscriptionSnapshot
    from bot.paths import REPO_ROOT

    responses = yaml.safe_load((REPO_ROOT / "domain.yml").read_text())["responses"]
    devices = tuple(Device("desktop", f"PC-{n:02d}", datetime(2026, 1, 1, 0, n)) for n in range(27))
    professional = SubscriptionSnapshot(1, "professional", "Professional", Decimal("200"), date(2026, 1, 1),
                                        date(2026, 1, 1), "active", devices, 1)
    for language, words in (("en", ["the FAQ describes only a downgrade from Standard to Starter",
                                     "our operator policy", "2 device(s) would lose premium protection: PC-25, "
                                     "PC-26", "Unifi confirms"]),
                            ("ms", ["Soalan Lazim hanya menerangkan", "dasar operator kami", "PC-25, PC-26"])):
        note = downgrade_note(professional, catalogue(), renderer(responses, language), language)
        assert note and all(word in note for word in words), note
