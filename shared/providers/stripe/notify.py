"""Stripe events as notifications (SPEC §16): payments that succeeded or failed, refunds,
disputes (one thread each, opened then closed), invoices whose payment failed (a thread
that a later payment closes), subscriptions (a thread each, created to deleted); every
other event rendered generically (shared.providers.notify_generic).

The event's name is Stripe's `type` (`charge.dispute.created`); a subscription's patterns
match it part by part (`charge.dispute.*`, `customer.subscription.*`). Amounts are in the
currency's minor unit as Stripe's API writes them (https://docs.stripe.com/currencies):
cents for most, the unit itself for the zero-decimal currencies, thousandths for the
three-decimal ones. Links lead to the Dashboard (`/test/` for an event with `livemode:
false`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from shared.providers import commonmark as md
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    YELLOW,
    Notice,
    Unrenderable,
    any_matches,
    card_of,
    settled,
    when,
)
from shared.providers.notify_generic import generic_notice
from shared.providers.reading import integer, obj, text

DASHBOARD = "https://dashboard.stripe.com"
# https://docs.stripe.com/currencies#zero-decimal and #three-decimal. ISK is written with
# two decimals in the API (an amount of 100 is 1 króna), so it is not among them.
ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# What a subscription update may change that a reader cares about (`previous_attributes`);
# an update of only the period (a renewal) or the latest invoice is quiet.
SUBSCRIPTION_VISIBLE = frozenset(
    {
        "status",
        "cancel_at_period_end",
        "cancel_at",
        "canceled_at",
        "plan",
        "items",
        "quantity",
        "pause_collection",
        "trial_end",
    }
)

EVENTS: frozenset[str] = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.succeeded",
        "charge.failed",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "invoice.payment_failed",
        "invoice.payment_succeeded",
        "invoice.paid",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
    }
)
DEFAULT_EVENTS: tuple[str, ...] = (
    "payment_intent.payment_failed",
    "charge.failed",
    "charge.dispute.created",
    "charge.dispute.closed",
    "invoice.payment_failed",
    "invoice.paid",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
STATE_COLORS = {
    "succeeded": GREEN,
    "failed": RED,
    "refunded": GRAY,
    "needs_response": RED,
    "warning_needs_response": RED,
    "under_review": YELLOW,
    "warning_under_review": YELLOW,
    "won": GREEN,
    "lost": RED,
    "warning_closed": GRAY,
    "paid": GREEN,
    "open": YELLOW,
    "active": GREEN,
    "trialing": GREEN,
    "past_due": RED,
    "unpaid": RED,
    "canceled": GRAY,
    "incomplete": YELLOW,
    "incomplete_expired": GRAY,
    "paused": GRAY,
}


def money(amount: object, currency: object) -> str | None:
    """`amount` (Stripe's minor units) in `currency`, as `USD 22.00`, `JPY 500`,
    `KWD 5.120`; None when either is missing."""
    if type(amount) is not int or not isinstance(currency, str) or not currency.strip():
        return None
    code = currency.strip().lower()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    value = Decimal(amount).scaleb(-places)
    return f"{code.upper()} {value:,.{places}f}"


class _Event:
    """One Stripe event: its `type`, `data.object`, `data.previous_attributes`, mode."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload
        self.type = text(payload, "type") or ""
        self.object = obj(payload, "data", "object")
        self.previous = obj(payload, "data", "previous_attributes")
        self.live = (
            payload.get("livemode") is not False and self.object.get("livemode") is not False
        )

    def dashboard(self, *path: str) -> str | None:
        """The object's Dashboard page (`/test/…` for test-mode events)."""
        if not all(path):
            return None
        # Ids from outside are path segments, never a query, a scheme or another path.
        parts = [quote(part, safe="") for part in path]
        return "/".join([DASHBOARD, *([] if self.live else ["test"]), *parts])

    def customer(self) -> str | None:
        """Who paid: an email or a name the object carries, else the customer's id."""
        o = self.object
        for found in (
            text(o, "receipt_email"),
            text(o, "billing_details", "email"),
            text(o, "customer_email"),
            text(o, "customer_details", "email"),
            text(o, "billing_details", "name"),
            text(o, "customer_name"),
            text(o, "customer_details", "name"),
            text(o, "customer", "email"),
            text(o, "customer"),
            text(o, "customer", "id"),
        ):
            if found:
                return found
        return None

    def customer_id(self) -> str | None:
        """The customer's id (`cus_…`), the object's `customer` as an id or expanded."""
        return text(self.object, "customer") or text(self.object, "customer", "id")


def _who(e: _Event) -> str:
    """` from <the customer>`, linked to the customer's Dashboard page where the object
    names the customer (Zulip threads a charge under it)."""
    customer = e.customer()
    if not customer:
        return ""
    customer_id = e.customer_id()
    page = e.dashboard("customers", customer_id) if customer_id else None
    return f" from {md.link(md.text(customer), page)}"


def _mode(e: _Event) -> str:
    return "" if e.live else " (test mode)"


def _notice(
    e: _Event,
    line: str,
    title: str,
    url: str | None,
    state: str | None,
    *,
    item: str | None = None,
    resolved: bool | None = None,
    needs_root_by_default: bool = False,
    started: object = None,
    fields: tuple[tuple[str, str | None], ...] = (),
) -> Notice:
    customer, customer_id = e.customer(), e.customer_id()
    card = card_of(
        title,
        url,
        state,
        STATE_COLORS.get(state or ""),
        [
            *fields,
            ("Customer", customer),
            ("Customer ID", customer_id if customer_id != customer else None),
            ("Mode", None if e.live else "test"),
        ],
    )
    return Notice(
        event=e.type,
        text=line,
        card=card,
        item=item,
        item_card=card if item else None,
        default=any_matches(DEFAULT_EVENTS, e.type),
        resolved=resolved,
        needs_root_by_default=needs_root_by_default,
        started_at=when(started),
    )


def _payment(e: _Event) -> Notice:
    o = e.object
    payment_id = text(o, "id")
    if payment_id is None:
        raise Unrenderable(f"a {e.type} without `data.object.id`")
    amount = money(o.get("amount"), o.get("currency")) or "a payment"
    # A charge belongs to its payment intent, whose Dashboard page shows both.
    page = e.dashboard("payments", text(o, "payment_intent") or payment_id)
    named = md.link(f"**{md.text(amount)}**", page)
    kind = e.type.rsplit(".", 1)[-1]
    if kind == "succeeded":
        line, state = f"Payment of {named}{_who(e)} succeeded", "succeeded"
    elif kind == "refunded":
        refunded = money(o.get("amount_refunded"), o.get("currency"))
        part = f" ({md.text(refunded)} of it)" if refunded and refunded != amount else ""
        line, state = f"Payment of {named}{_who(e)} refunded{part}", "refunded"
    elif kind == "canceled":
        line, state = f"Payment of {named}{_who(e)} canceled", "canceled"
    else:
        error = obj(o, "last_payment_error")
        message = text(o, "failure_message") or text(error, "message")
        code = text(o, "failure_code") or text(error, "decline_code") or text(error, "code")
        line, state = f"Payment of {named}{_who(e)} failed", "failed"
        if message:
            line += f": {md.text(message)}"
        if code:
            line += f" ({md.code(code)})"
    description = text(o, "description")
    if description:
        line += f" — {md.text(description)}"
    return _notice(
        e,
        line + _mode(e),
        f"Payment {amount} {state}",
        page,
        state,
        fields=(("Amount", amount), ("Payment", payment_id)),
    )


_DISPUTE_WORDS = {
    "created": "opened",
    "updated": "updated",
    "closed": "closed",
    "funds_withdrawn": "funds withdrawn",
    "funds_reinstated": "funds reinstated",
}


def _dispute(e: _Event) -> Notice:
    o = e.object
    dispute_id = text(o, "id")
    if dispute_id is None:
        raise Unrenderable("a dispute without `data.object.id`")
    amount = money(o.get("amount"), o.get("currency")) or "a payment"
    status = text(o, "status")
    reason = text(o, "reason")
    page = e.dashboard("disputes", dispute_id)
    action = e.type.rsplit(".", 1)[-1]
    word = _DISPUTE_WORDS.get(action, md.text(action))
    line = f"Dispute of {md.link(f'**{md.text(amount)}**', page)} {word}"
    if reason:
        line += f": {md.text(reason.replace('_', ' '))}"
    if status:
        line += f" ({md.code(status)})"
    due = when(integer(o, "evidence_details", "due_by"))
    if action == "created" and due is not None:
        line += f", evidence due by {due:%Y-%m-%d}"
    return _notice(
        e,
        line + _mode(e),
        f"Dispute {amount}",
        page,
        status,
        item=dispute_id,
        resolved={"created": False, "closed": True}.get(action),
        started=o.get("created"),
        fields=(("Amount", amount), ("Reason", reason), ("Charge", text(o, "charge"))),
    )


def _invoice(e: _Event) -> Notice:
    o = e.object
    invoice_id = text(o, "id")
    if invoice_id is None:
        raise Unrenderable("an invoice without `data.object.id`")
    amount = money(o.get("amount_due"), o.get("currency")) or "an amount"
    number = text(o, "number") or invoice_id
    page = e.dashboard("invoices", invoice_id)
    named = md.link(f"Invoice {md.text(number)}", page)
    failed = e.type == "invoice.payment_failed"
    if failed:
        line = f"{named} payment failed: **{md.text(amount)}** due{_who(e)}"
        attempts = integer(o, "attempt_count")
        if attempts:
            line += f", attempt {attempts}"
        retry = when(o.get("next_payment_attempt"))
        if retry is not None:
            line += f", next attempt {retry:%Y-%m-%d %H:%M} UTC"
    else:
        paid = money(o.get("amount_paid"), o.get("currency")) or amount
        line = f"{named} paid: **{md.text(paid)}**{_who(e)}"
    return _notice(
        e,
        line + _mode(e),
        f"Invoice {number}",
        page,
        "failed" if failed else "paid",
        item=invoice_id,
        resolved=not failed,
        # By default a payment is news after a failure (its thread's end); a subscription
        # naming `invoice.paid` takes every one.
        needs_root_by_default=not failed,
        fields=(("Amount due", amount), ("Subscription", text(o, "subscription"))),
    )


def _plan(o: Mapping[str, Any]) -> str | None:
    """The subscription's plan: `nickname (USD 1.00 / year) x 800`."""
    items = [i for i in (obj(o, "items").get("data") or []) if isinstance(i, dict)]
    plan = obj(o, "plan") or (obj(items[0], "price") or obj(items[0], "plan") if items else {})
    if not plan:
        return None
    name = text(plan, "nickname") or text(plan, "product") or text(plan, "id") or "plan"
    price = money(plan.get("amount", plan.get("unit_amount")), plan.get("currency"))
    interval = text(plan, "interval") or text(plan, "recurring", "interval")
    shown = name
    if price:
        shown += f" ({price}" + (f" / {interval})" if interval else ")")
    quantity = integer(o, "quantity")
    if quantity is not None and quantity != 1:
        shown += f" x {quantity}"
    return shown


def _subscription(e: _Event) -> Notice:
    o = e.object
    subscription_id = text(o, "id")
    if subscription_id is None:
        raise Unrenderable("a subscription without `data.object.id`")
    status = text(o, "status")
    page = e.dashboard("subscriptions", subscription_id)
    action = e.type.rsplit(".", 1)[-1]
    named = md.link(f"Subscription {md.code(subscription_id)}", page)
    words = {
        "created": "created",
        "updated": "updated",
        "deleted": "canceled",
        "paused": "paused",
        "resumed": "resumed",
        "trial_will_end": "trial ends soon",
    }
    line = f"{named}{_who(e)} {words.get(action, md.text(action))}"
    plan = _plan(o)
    if plan:
        line += f": {md.text(plan)}"
    was = text(e.previous, "status")
    if was and status and was != status:
        line += f", status {md.code(was)} → {md.code(status)}"
    elif status:
        line += f", status {md.code(status)}"
    if action == "trial_will_end":
        end = when(o.get("trial_end"))
        if end is not None:
            line += f", on {end:%Y-%m-%d}"
    if o.get("cancel_at_period_end") is True and action != "deleted":
        line += ", cancels at the end of the period"
    notice = _notice(
        e,
        line + _mode(e),
        f"Subscription {subscription_id}",
        page,
        status,
        item=subscription_id,
        resolved={"created": False, "deleted": True}.get(action),
        started=o.get("created"),
        fields=(("Plan", plan), ("Status", status)),
    )
    if action == "updated" and not SUBSCRIPTION_VISIBLE & set(e.previous):
        return replace(notice, quiet="a renewal or another change nothing shows")
    return notice


_RENDERERS: dict[str, Callable[[_Event], Notice]] = {
    "payment_intent": _payment,
    "charge": _payment,
    "charge.dispute": _dispute,
    "invoice": _invoice,
    "customer.subscription": _subscription,
}


class StripeNotifier:
    name: str = "stripe"
    events: frozenset[str] = EVENTS
    # Stripe's other events (a few hundred) are rendered generically.
    generic_events: frozenset[str] = frozenset({"*"})
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset()

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        e = _Event(payload)
        if not e.type:
            e.type = (event_header or "").strip()
        if not e.type:
            raise Unrenderable("the event has no `type`")
        if e.type in EVENTS:
            kind = e.type.rsplit(".", 1)[0]
            return settled(_RENDERERS[kind](e))
        return generic_notice("Stripe", e.type, payload)


NOTIFIER = StripeNotifier()
