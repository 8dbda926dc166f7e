"""Account-aware answers for a verified customer, in English or Malay.

The wording lives in domain.yml (responses utter_account_*, one variation per language); this module picks the
facts from an AccountSnapshot, applies the rules (bot/accounts/rules.py) and fills the templates in. Figures that
rest on operator policy (resources/accounts/policy.yml: a started contract month, proration, which devices a
downgrade keeps) are given as estimates with the rule in plain words. It never includes an activation code or a
one-time code.
"""
from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal
from typing import Callable, Dict, Mapping, Optional, Sequence

import yaml

from bot.accounts.catalogue import Catalogue, catalogue
from bot.accounts.identifiers import mask_account_number, mask_email
from bot.accounts.policy import policy
from bot.accounts.rules import (
    billing_period,
    contract_end,
    devices_losing_protection,
    downgrade_impact,
    next_bill_date,
    plan_change_check,
    prorated_charge,
    termination_penalty,
    to_ringgit,
)
from bot.accounts.store import AccountSnapshot, SubscriptionSnapshot
from bot.paths import RESOURCES_DIR

FORMATS_FILE = RESOURCES_DIR / "accounts" / "formats.yml"
DEFAULT_LANGUAGE = "en"

Render = Callable[..., str]   # render(response_name, **values) -> text in the conversation's language


@functools.lru_cache(maxsize=1)
def formats() -> dict:
    with open(FORMATS_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def response_text(responses: Mapping, name: str, language: Optional[str]) -> str:
    """The text of response `name` for `language`: its variation conditioned on language=<language>, else the
    unconditioned (English) one."""
    variations = responses.get(name) or []
    default = None
    for variation in variations:
        conditions = variation.get("condition") or []
        if not conditions:
            default = default or variation.get("text")
        elif any(c.get("name") == "language" and c.get("value") == language for c in conditions):
            return variation.get("text", "")
    if default is None:
        raise KeyError(f"no response {name!r}")
    return default


def renderer(responses: Mapping, language: Optional[str]) -> Render:
    def render(name: str, **values) -> str:
        return response_text(responses, name, language).format(**values)
    return render


def money(amount) -> str:
    return f"RM{to_ringgit(amount):,.2f}"


def day(value: date, language: Optional[str]) -> str:
    months = formats()["months"].get(language or DEFAULT_LANGUAGE, formats()["months"][DEFAULT_LANGUAGE])
    return f"{value.day} {months[value.month - 1]} {value.year}"


def licence_label(kind: str, language: Optional[str]) -> str:
    labels = formats()["licences"][kind]
    return labels.get(language or DEFAULT_LANGUAGE, labels[DEFAULT_LANGUAGE])


def licence_count(kind: str, count: int, language: Optional[str]) -> str:
    """"5 desktops", "1 file server"; Malay has one form ("1 pelayan fail")."""
    one = (formats().get("licence_one") or {}).get(kind, {}).get(language or DEFAULT_LANGUAGE)
    return f"{count} {one if count == 1 and one else licence_label(kind, language)}"


def _join(items: Sequence[str], language: Optional[str]) -> str:
    separators = formats()["list_separator"]
    return separators.get(language or DEFAULT_LANGUAGE, separators[DEFAULT_LANGUAGE]).join(items)


def _common(snapshot: AccountSnapshot) -> Dict[str, str]:
    return {"account": mask_account_number(snapshot.account_number), "business": snapshot.business_name}


# --- ask_termination_penalty ------------------------------------------------------------------------------

def penalty_total(snapshot: AccountSnapshot, today: date) -> Decimal:
    months, part_month = catalogue().contract_months, policy().part_month.name
    return to_ringgit(sum((termination_penalty(s.monthly_fee, s.contract_start, today, months, part_month).amount
                           for s in snapshot.active_subscriptions), Decimal("0")))


def termination_penalty_answer(snapshot: AccountSnapshot, today: date, render: Render, language: str) -> str:
    subscriptions = snapshot.active_subscriptions
    if not subscriptions:
        return render("utter_account_no_subscription", **_common(snapshot))
    lines = [render("utter_account_penalty_header", today=day(today, language), **_common(snapshot))]
    with_penalty = 0
    for s in subscriptions:
        penalty = termination_penalty(s.monthly_fee, s.contract_start, today, catalogue().contract_months,
                                      policy().part_month.name)
        values = dict(plan=s.plan_name, fee=money(s.monthly_fee), contract_start=day(s.contract_start, language),
                      contract_end=day(penalty.contract_end, language), months=penalty.months_remaining,
                      penalty=money(penalty.amount))
        if penalty.applies:
            with_penalty += 1
            lines.append(render("utter_account_penalty_line", **values))
        else:
            lines.append(render("utter_account_penalty_line_none", **values))
    if len(subscriptions) > 1 and with_penalty:
        lines.append(render("utter_account_penalty_total", total=money(penalty_total(snapshot, today))))
    return "\n".join(lines) + "\n\n" + render("utter_account_penalty_footer",
                                                part_month_rule=policy().part_month.explained(language))


# --- ask_account_status -----------------------------------------------------------------------------------

def account_status_answer(snapshot: AccountSnapshot, today: date, render: Render, language: str) -> str:
    if snapshot.status == "suspended":
        text = render("utter_account_status_suspended", since=day(snapshot.suspended_since, language)
                      if snapshot.suspended_since else "-", amount=money(snapshot.outstanding_amount),
                      **_common(snapshot))
        plan_change = plan_change_check(snapshot.status, snapshot.outstanding_amount)
        if not plan_change.allowed:
            text += "\n\n" + render("utter_account_plan_change_blocked", amount=money(plan_change.amount_to_settle))
        return text
    if snapshot.status == "terminated":
        return render("utter_account_status_terminated", **_common(snapshot))
    plans = _join([s.plan_name for s in snapshot.active_subscriptions], language) or "-"
    return render("utter_account_status_active", plans=plans, **_common(snapshot))


# --- ask_outstanding_balance ------------------------------------------------------------------------------

def outstanding_balance_answer(snapshot: AccountSnapshot, today: date, render: Render, language: str) -> str:
    payment = snapshot.last_payment
    last_payment = (render("utter_account_last_payment", amount=money(payment.amount),
                           date=day(payment.paid_on, language), channel=payment.channel)
                    if payment else render("utter_account_no_payment"))
    text = render("utter_account_balance", amount=money(snapshot.outstanding_amount), last_payment=last_payment,
                  next_bill=day(next_bill_date(today, snapshot.bill_day), language), bill_day=snapshot.bill_day,
                  **_common(snapshot))
    extra = []
    if snapshot.status == "suspended":
        extra.append(render("utter_account_balance_suspended"))
    extra.append(render("utter_account_autopay_on" if snapshot.autopay else "utter_account_autopay_off"))
    return text + "\n" + " ".join(extra)


# --- ask_my_subscription ----------------------------------------------------------------------------------

def usage_text(subscription: SubscriptionSnapshot, plans: Catalogue, language: str) -> str:
    allowances = plans.plan(subscription.plan_key).allowances
    parts = []
    for kind in plans.device_types:
        in_use = sum(1 for d in subscription.devices if d.type == kind)
        parts.append(f"{licence_label(kind, language)} {in_use}/{allowances.get(kind, 0)}")
    if "vpn" in allowances:
        parts.append(f"{licence_label('vpn', language)} {allowances['vpn']}")
    return _join(parts, language)


def downgrade_note(subscription: SubscriptionSnapshot, plans: Catalogue, render: Render,
                   language: str) -> Optional[str]:
    """The warning for a downgrade to the next smaller plan, when some devices would lose protection: FAQ 19's
    own words for the change it describes (Standard → Starter), the same rule labelled as operator policy for
    any other."""
    current = plans.plan(subscription.plan_key)
    smaller = plans.smaller_plans(current)
    if not smaller:
        return None
    target = smaller[0]
    impacts = downgrade_impact(subscription.devices, target.allowances, plans.device_types)
    losing = devices_losing_protection(impacts)
    if not losing:
        return None
    rules = policy()
    values = dict(plan=subscription.plan_name, smaller=target.name, count=len(losing),
                  devices=_join([d.name for d in losing], language),
                  device_rule=rules.downgrade_devices.explained(language))
    if (current.key, target.key) == rules.faq_downgrade:
        licences = _join([licence_count(kind, target.allowances.get(kind, 0), language)
                          for kind in plans.device_types], language)
        return render("utter_account_downgrade_note", licences=licences, **values)
    return render("utter_account_downgrade_note_policy", **values)


def my_subscription_answer(snapshot: AccountSnapshot, today: date, render: Render, language: str) -> str:
    subscriptions = snapshot.active_subscriptions
    if not subscriptions:
        return render("utter_account_no_subscription", **_common(snapshot))
    plans = catalogue()
    current_period_start = billing_period(today, snapshot.bill_day)[0]
    lines = [render("utter_account_subscriptions_header", count=len(subscriptions), **_common(snapshot))]
    for s in subscriptions:
        lines.append(render("utter_account_subscription_line", plan=s.plan_name, fee=money(s.monthly_fee),
                            contract_start=day(s.contract_start, language),
                            contract_end=day(contract_end(s.contract_start, plans.contract_months), language),
                            usage=usage_text(s, plans, language)))
        if s.start_date >= current_period_start and s.start_date != current_period_start:
            charge = prorated_charge(s.monthly_fee, s.start_date, snapshot.bill_day)
            lines.append(render("utter_account_proration", start=day(s.start_date, language),
                                period_start=day(charge.period_start, language),
                                period_end=day(charge.period_end, language), days=charge.days_charged,
                                days_in_period=charge.days_in_period, amount=money(charge.amount),
                                proration_rule=policy().proration.explained(language)))
        note = downgrade_note(s, plans, render, language)
        if note:
            lines.append(note)
    return "\n".join(lines)


# --- lost_activation_code ---------------------------------------------------------------------------------

def activation_codes_answer(snapshot: AccountSnapshot, codes: int, sent_recently: bool, render: Render,
                            sender: str) -> str:
    """`sender`: the address the email comes from, named so that the customer can tell it from a phishing one."""
    if not codes:
        return render("utter_account_no_codes", **_common(snapshot))
    if sent_recently:
        return render("utter_account_codes_recently_sent", email=mask_email(snapshot.email), sender=sender)
    return render("utter_account_codes_sent", count=len(snapshot.active_subscriptions),
                  email=mask_email(snapshot.email), sender=sender)


ANSWERS = {
    "ask_termination_penalty": termination_penalty_answer,
    "ask_account_status": account_status_answer,
    "ask_outstanding_balance": outstanding_balance_answer,
    "ask_my_subscription": my_subscription_answer,
}


# --- what a human agent sees of a verified customer (the agent console) --------------------------------------

def account_summary(snapshot: AccountSnapshot, today: date) -> Dict[str, object]:
    """Plans, status, contract end and amount owed, with the account number masked."""
    return {
        "account_number": mask_account_number(snapshot.account_number),
        "business_name": snapshot.business_name,
        "status": snapshot.status,
        "suspended_since": snapshot.suspended_since.isoformat() if snapshot.suspended_since else None,
        "outstanding": money(snapshot.outstanding_amount),
        "bill_day": snapshot.bill_day,
        "next_bill": next_bill_date(today, snapshot.bill_day).isoformat(),
        "autopay": snapshot.autopay,
        "subscriptions": [
            {"plan": s.plan_name, "status": s.status,
             "contract_end": contract_end(s.contract_start, catalogue().contract_months).isoformat(),
             "monthly_fee": money(s.monthly_fee), "devices": len(s.devices)}
            for s in snapshot.subscriptions
        ],
    }
