"""Stripe's events rendered (SPEC §16): payments with their amount in the currency's own
units and a Dashboard link (test mode under `/test/`), disputes and subscriptions as one
thread each, invoices whose payment failed a thread a later payment closes, every other
event generically; outside text stays text. Payloads from shared/providers/stripe/samples
(their README says where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.notify import Notice, Unrenderable
from shared.providers.stripe.notify import NOTIFIER, money
from tests.providers.mutations import survives
from tests.providers.notify_support import HOSTILE, assert_defused, assert_inert, links, plain
from tests.providers.samples import load


def sample(name: str) -> dict[str, Any]:
    return load("stripe", name)


def render(payload: dict[str, Any]) -> Notice:
    kind = payload.get("type")
    return NOTIFIER.notice(kind if isinstance(kind, str) else None, payload)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (2200, "usd", "USD 22.00"),
        (123456, "eur", "EUR 1,234.56"),
        (500, "jpy", "JPY 500"),  # zero-decimal: the amount is in yen
        (50000, "krw", "KRW 50,000"),
        (5120, "kwd", "KWD 5.120"),  # three-decimal
        (500, "isk", "ISK 5.00"),  # two decimals in the API
    ],
)
def test_amounts_are_in_the_currencys_own_units(amount: int, currency: str, shown: str) -> None:
    assert money(amount, currency) == shown


def test_a_failed_charge_says_why_and_links_to_the_test_dashboard() -> None:
    notice = render(sample("charge.failed"))
    assert notice.event == "charge.failed" and notice.default and notice.item is None
    seen = plain(notice.text)
    assert "Payment of USD 22.00 failed: Your card was declined. (card_declined)" in seen
    assert seen.strip().endswith("(test mode)")
    assert links(notice.text) == [
        ("https://dashboard.stripe.com/test/payments/pi_3TbGfyJEe0yY0QKr0V9PBbP9", "USD 22.00")
    ]
    live = sample("charge.failed")
    live["livemode"] = live["data"]["object"]["livemode"] = True
    live["data"]["object"]["currency"] = "jpy"
    live["data"]["object"]["billing_details"]["email"] = "jenny@example.com"
    notice = render(live)
    assert links(notice.text)[0][0].startswith("https://dashboard.stripe.com/payments/")
    assert "Payment of JPY 2,200 from jenny@example.com failed" in plain(notice.text)
    succeeded = sample("charge.failed")
    succeeded["type"] = "charge.succeeded"
    assert not render(succeeded).default and "succeeded" in plain(render(succeeded).text)


def test_a_charge_names_its_customer_linked_to_the_customers_page() -> None:
    """Zulip's capture of a card charge, which Zulip files under its customer
    (`cus_00000000000000`): the message links the customer, the card names both."""
    notice = render(sample("charge.succeeded"))
    assert notice.event == "charge.succeeded" and not notice.default
    assert "Payment of AUD 1.00 from user@example.com succeeded" in plain(notice.text)
    customer = "https://dashboard.stripe.com/customers/cus_00000000000000"
    assert (customer, "user@example.com") in links(notice.text)
    assert notice.card is not None
    fields = {f.name: f.value.replace("\u200d", "") for f in notice.card.fields}
    assert fields["Customer"] == "user@example.com"
    assert fields["Customer ID"] == "cus_00000000000000"
    # Only the customer's id: shown once, linked (the invoice's capture, in test mode).
    failed = render(sample("invoice.payment_failed"))
    assert (
        "https://dashboard.stripe.com/test/customers/cus_00000000000000",
        "cus_00000000000000",
    ) in links(failed.text)
    assert failed.card is not None and "Customer ID" not in {f.name for f in failed.card.fields}


def test_a_dispute_created_then_closed_is_one_item_that_resolves() -> None:
    created = render(sample("charge.dispute.created"))
    # Stripe sends the same dispute object, its status final, in `charge.dispute.closed`.
    closed_payload = sample("charge.dispute.created")
    closed_payload["type"] = "charge.dispute.closed"
    closed_payload["data"]["object"]["status"] = "lost"
    closed = render(closed_payload)
    assert created.item == closed.item == "du_1TbG46JEe0yY0QKr8P0G3pa3"
    assert (created.resolved, closed.resolved) == (False, True)
    assert created.default and closed.default
    assert created.started_at == datetime.fromtimestamp(1779783018, UTC)
    seen = plain(created.text)
    assert "Dispute of USD 22.00 opened: product not received (needs_response)" in seen
    assert "evidence due by 2026-06-03" in seen
    assert links(created.text)[0][0] == (
        "https://dashboard.stripe.com/test/disputes/du_1TbG46JEe0yY0QKr8P0G3pa3"
    )
    assert closed.item_card is not None and closed.item_card.state == "lost"
    assert closed.item_card.color == "#cf222e"


def test_an_invoice_that_failed_then_was_paid() -> None:
    failed = render(sample("invoice.payment_failed"))
    assert failed.event == "invoice.payment_failed" and failed.default
    assert failed.item == "in_00000000000000" and failed.resolved is False
    assert "payment failed: AUD 0.00 due from cus_00000000000000" in plain(failed.text)
    paid_payload = sample("invoice.payment_failed")
    paid_payload["type"] = "invoice.paid"
    paid = render(paid_payload)
    assert paid.item == failed.item and paid.resolved is True
    # After a failure by default; to a subscription naming it, every paid invoice.
    assert paid.needs_root_by_default and not paid.needs_root


def test_a_subscription_change_names_its_plan_and_status() -> None:
    notice = render(sample("customer.subscription.updated"))
    assert notice.event == "customer.subscription.updated" and notice.default
    assert notice.item == "sub_E6STM5w5EX3K28" and notice.resolved is None
    seen = plain(notice.text)
    assert "flatrate (USD 1.00 / year) x 800, status active → trialing" in seen
    assert (
        links(notice.text)[0][0] == "https://dashboard.stripe.com/subscriptions/sub_E6STM5w5EX3K28"
    )
    renewal = sample("customer.subscription.updated")
    renewal["data"]["previous_attributes"] = {"current_period_end": 1, "current_period_start": 0}
    assert render(renewal).quiet is not None and not render(renewal).default
    deleted = sample("customer.subscription.updated")
    deleted["type"] = "customer.subscription.deleted"
    deleted["data"]["object"]["status"] = "canceled"
    notice = render(deleted)
    assert notice.resolved is True and notice.item == "sub_E6STM5w5EX3K28"
    assert "canceled" in plain(notice.text)


def test_any_other_event_is_rendered_generically_and_is_not_a_default() -> None:
    notice = render(sample("setup_intent.created"))
    assert notice.event == "setup_intent.created" and not notice.default
    assert "Stripe: setup_intent.created: seti_1NG8Du2eZvKYlo2C9XMqbR0x" in plain(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("charge.failed")
    charge = payload["data"]["object"]
    charge.update(description=hostile, failure_message=hostile, failure_code=hostile)
    charge["billing_details"]["email"] = hostile
    charge["payment_intent"] = "javascript:alert(1)"
    notice = render(payload)
    baseline = sample("charge.failed")
    baseline["data"]["object"]["billing_details"]["email"] = "x"
    assert_inert(notice.text, baseline=render(baseline).text)
    assert notice.card is not None
    assert_defused(notice.card.title)
    dispute = sample("charge.dispute.created")
    dispute["data"]["object"].update(reason=hostile, status=hostile, id=hostile)
    assert_inert(render(dispute).text, baseline=render(sample("charge.dispute.created")).text)


@pytest.mark.parametrize(
    "name",
    [
        "charge.failed",
        "charge.dispute.created",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ],
)
def test_broken_payloads_are_unrenderable_or_rendered_with_what_is_there(name: str) -> None:
    survives(render, sample(name))
    bad: Any = []
    with pytest.raises(Unrenderable):
        NOTIFIER.notice("charge.failed", bad)
    with pytest.raises(Unrenderable):
        NOTIFIER.notice(None, {"data": {}})
