"""A slash command's words (SPEC §20): `/hookhub <verb> <arguments>`, and how
`/hookhub subscribe <provider> <target> [key=value …]` becomes the subscription API's body
(services.sync.subscriptions.schemas), which the subscription service then checks as it
checks the API's: nothing here judges a value.

Pure: text in, words and a body out. A refusal's message is CommonMark for the channel,
the user's words in it escaped (shared.providers.commonmark)."""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from shared.providers import commonmark as md
from shared.providers.chat import COMMAND_VERBS

NAME = "/hookhub"
VERBS = tuple(COMMAND_VERBS)
# A target that names every item of the provider (`/hookhub subscribe pagerduty *`).
EVERYTHING = ("*", "-")
# What a provider's subscriptions filter on, named by the target: the first it takes.
TARGETS = ("repositories", "projects")

# The `key=value` words `subscribe` takes: where each goes in the body. A list's values
# are comma-separated (`events=pull_request.*,issues.opened`); `labels` is `labels.any`.
LISTS: dict[str, tuple[str, ...]] = {
    "events": ("events",),
    "exclude_events": ("exclude_events",),
    "repositories": ("repositories",),
    "projects": ("projects",),
    "branches": ("branches",),
    "labels": ("labels", "any"),
    "labels.any": ("labels", "any"),
    "labels.all": ("labels", "all"),
    "labels.none": ("labels", "none"),
    "authors.exclude": ("authors", "exclude"),
}
VALUES: dict[str, tuple[str, ...]] = {
    "drafts": ("drafts",),
    "threads": ("threads",),
    "authors.bots": ("authors", "bots"),
}
KEYS = (*LISTS, *VALUES)


class Refused(ValueError):
    """Words a command cannot take; the message is CommonMark, for the channel."""


@dataclass(frozen=True)
class Invocation:
    """The verb as typed (lower case; `help` when there is none) and its arguments."""

    verb: str
    args: tuple[str, ...]


def invocation(text: str) -> Invocation:
    """`text` split as a shell splits it (quotes keep a label's spaces; an unbalanced
    quote, at spaces), the leading `/hookhub` left out."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    if words and words[0].lower() == NAME:
        words = words[1:]
    if not words:
        return Invocation("help", ())
    return Invocation(words[0].lower(), tuple(words[1:]))


def reference(word: str) -> tuple[str, str | None]:
    """`github` → (`github`, None); `github:int_1` → (`github`, `int_1`)."""
    provider, _, integration_id = word.partition(":")
    return provider.lower(), integration_id or None


def target_field(filters: Collection[str]) -> str | None:
    """The filter a provider's target names (its subscriptions' `filters`), if any."""
    return next((name for name in TARGETS if name in filters), None)


def subscription_fields(
    words: Sequence[str], target: str, field: str | None, provider_name: str
) -> dict[str, Any]:
    """The body's filters from the `key=value` words, the target first in `field`."""
    body: dict[str, Any] = {}
    for word in words:
        key, equals, value = word.partition("=")
        key = key.lower()
        path = LISTS.get(key) or VALUES.get(key)
        if not equals or path is None:
            raise Refused(
                f"{md.code(word)} is not a filter: filters are `key=value`, the keys "
                + ", ".join(f"`{key}`" for key in KEYS)
            )
        *parents, last = path
        place = body
        for parent in parents:
            place = place.setdefault(parent, {})
        if key in LISTS:
            place.setdefault(last, []).extend(value.split(","))
        else:
            place[last] = value
    if target in EVERYTHING:
        return body
    if field is None:
        raise Refused(
            f"{md.text(provider_name)} subscriptions filter on no repository or project: "
            "give `*` for all of its events"
        )
    body[field] = [target, *body.get(field, [])]
    return body
