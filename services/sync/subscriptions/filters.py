"""A subscription's filters (SPEC §12): which notices it leaves out and why, and which
filter values it refuses at creation. Pure: a subscription and a `Notice` in, a reason out.

Every filter applies to the notices that carry its fact: `branches` to those with a branch,
`labels` to pull requests and issues, `repositories` and `projects` to those naming one (a
Jira sprint names no project), `authors` to those with an actor. Reasons, in the order they
are checked: `disabled`, `quiet`, `event`, `excluded_event`, `repository`, `project`,
`branch`, `label`, `author`, `bot`, `draft`; and, once past them, `no_open_item` (a notice
that needs its item's root where the item has none: services.sync.notifications).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.providers.notify import Notice, Notifier, any_matches, known

REASONS = (
    "disabled",
    "quiet",
    "event",
    "excluded_event",
    "repository",
    "project",
    "branch",
    "label",
    "author",
    "bot",
    "draft",
    # Counted by the notifications consumer, not here: a notice that needs its item's root
    # (Notice.needs_root, a recovery) about an item with no root in the channel.
    "no_open_item",
)

FILTERS = ("repositories", "projects", "branches", "labels", "authors", "drafts")

_CLASS = re.compile(r"\[!?\]?[^\]]*\]")
_REPOSITORY_PART = re.compile(r"^[A-Za-z0-9_.\-*?\[\]!]+$")
_PROJECT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Labels:
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()


@dataclass(frozen=True)
class Authors:
    exclude: tuple[str, ...] = ()
    bots: bool = True


@dataclass(frozen=True)
class Filters:
    """What `filtered` reads of a subscription; None where a filter is not set."""

    enabled: bool = True
    events: tuple[str, ...] | None = None
    exclude_events: tuple[str, ...] = ()
    repositories: tuple[str, ...] | None = None
    projects: tuple[str, ...] | None = None
    branches: tuple[str, ...] | None = None
    labels: Labels | None = None
    authors: Authors | None = None
    drafts: bool = False


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


def _maybe(value: Any) -> tuple[str, ...] | None:
    return None if value is None else _strings(value)


def filters_of(doc: Mapping[str, Any]) -> Filters:
    """A stored subscription's filters."""
    labels, authors = doc.get("labels"), doc.get("authors")
    return Filters(
        enabled=bool(doc.get("enabled", True)),
        events=_maybe(doc.get("events")),
        exclude_events=_strings(doc.get("exclude_events")),
        repositories=_maybe(doc.get("repositories")),
        projects=_maybe(doc.get("projects")),
        branches=_maybe(doc.get("branches")),
        labels=None
        if labels is None
        else Labels(
            any=_strings(labels.get("any")),
            all=_strings(labels.get("all")),
            none=_strings(labels.get("none")),
        ),
        authors=None
        if authors is None
        else Authors(
            exclude=_strings(authors.get("exclude")),
            bots=authors.get("bots") is not False,
        ),
        drafts=bool(doc.get("drafts") or False),
    )


def _glob_any(patterns: Sequence[str], value: str, *, fold: bool) -> bool:
    if fold:
        value = value.lower()
        return any(fnmatch.fnmatchcase(value, p.lower()) for p in patterns)
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _outside(
    patterns: Sequence[str] | None, value: str | None, *, fold: bool, glob: bool = True
) -> bool:
    """Whether a set filter leaves out a notice with this fact (one without it is kept)."""
    if patterns is None or value is None:
        return False
    if not glob:
        return value.lower() not in {p.lower() for p in patterns}
    return not _glob_any(patterns, value, fold=fold)


def _labels_out(labels: Labels, present: Sequence[str]) -> bool:
    # GitHub label names are unique regardless of case.
    have = {label.lower() for label in present}
    if labels.any and not any(label.lower() in have for label in labels.any):
        return True
    if labels.all and not all(label.lower() in have for label in labels.all):
        return True
    return any(label.lower() in have for label in labels.none)


def filtered(subscription: Filters, notice: Notice) -> str | None:
    """Why `subscription` leaves `notice` out (one of `REASONS`), or None if it notifies it."""
    s = subscription
    if not s.enabled:
        return "disabled"
    if notice.quiet is not None:
        return "quiet"
    if s.events is None:
        if not notice.default:
            return "event"
    elif not any_matches(s.events, notice.event):
        return "event"
    if any_matches(s.exclude_events, notice.event):
        return "excluded_event"
    # GitHub's owner and repository names are case-insensitive; Jira keys are upper case.
    if _outside(s.repositories, notice.repository, fold=True):
        return "repository"
    if _outside(s.projects, notice.project, fold=True, glob=False):
        return "project"
    # Git branch names are case-sensitive; `*` crosses `/` (`release/*` takes
    # `release/1.2/hotfix`), as in fnmatch.
    if _outside(s.branches, notice.branch, fold=False):
        return "branch"
    if s.labels is not None and notice.item is not None and _labels_out(s.labels, notice.labels):
        return "label"
    actor = notice.actor
    if s.authors is not None and actor is not None:
        if actor.login and _glob_any(s.authors.exclude, actor.login, fold=True):
            return "author"
        if actor.bot and not s.authors.bots:
            return "bot"
    if notice.draft and not s.drafts:
        return "draft"
    return None


def glob_problem(pattern: str) -> str | None:
    """What is wrong with a glob, or None."""
    if not pattern.strip():
        return "is empty"
    if pattern != pattern.strip():
        return "has leading or trailing spaces"
    if "[" in _CLASS.sub("", pattern) or "]" in _CLASS.sub("", pattern):
        return "has an unbalanced `[`"
    return None


# GitLab's projects sit in groups and subgroups (`group/subgroup/project`).
_NESTED_PATHS = frozenset({"gitlab"})


def _repository_problem(provider: str, pattern: str) -> str | None:
    parts = pattern.split("/")
    if provider in _NESTED_PATHS:
        if len(parts) >= 2 and all(_REPOSITORY_PART.match(part) for part in parts):
            return None
        return "is not `group/project`, `group/subgroup/project` or `group/*`"
    if len(parts) == 2 and all(_REPOSITORY_PART.match(part) for part in parts):
        return None
    return "is not `owner/name` or `owner/*`"


def problems(provider: str, notifier: Notifier, fields: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a subscription's `fields` (as stored: only those set) for
    `provider`, each naming the field and the value."""
    found: list[str] = []
    applies = notifier.filters
    for name in FILTERS:
        if fields.get(name) is not None and name not in applies:
            found.append(
                f"{name} does not apply to {provider} subscriptions"
                f" (these do: {', '.join(sorted(applies))})"
            )
    for name in ("events", "exclude_events"):
        value = fields.get(name)
        if value is None:
            continue
        if name == "events" and not value:
            found.append("events is empty: leave it out for the provider's defaults")
        for pattern in value:
            if not known(notifier, pattern):
                found.append(f"{name}: `{pattern}` names no {provider} event")
    for name in ("repositories", "branches"):
        value = fields.get(name)
        if value is None or name not in applies:
            continue
        if not value:
            found.append(f"{name} is empty: leave it out not to filter by it")
        for pattern in value:
            problem = glob_problem(pattern)
            if problem is None and name == "repositories":
                problem = _repository_problem(provider, pattern)
            if problem is not None:
                found.append(f"{name}: `{pattern}` {problem}")
    projects = fields.get("projects")
    if projects is not None and "projects" in applies:
        if not projects:
            found.append("projects is empty: leave it out not to filter by it")
        for key in projects:
            if not _PROJECT_KEY.match(key):
                found.append(f"projects: `{key}` is not a Jira project key")
    labels = fields.get("labels")
    if labels is not None and "labels" in applies:
        if not any(labels.get(part) for part in ("any", "all", "none")):
            found.append("labels names none of `any`, `all`, `none`")
        for part in ("any", "all", "none"):
            for label in labels.get(part) or ():
                if not label.strip():
                    found.append(f"labels.{part}: an empty label")
    authors = fields.get("authors")
    if authors is not None and "authors" in applies:
        for pattern in authors.get("exclude") or ():
            problem = glob_problem(pattern)
            if problem is not None:
                found.append(f"authors.exclude: `{pattern}` {problem}")
    return found
