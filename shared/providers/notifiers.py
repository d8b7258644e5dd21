"""The providers that notify (SPEC §12), by name: the ones a subscription can be made on."""

from __future__ import annotations

from collections.abc import Mapping

from shared.providers.github.notify import NOTIFIER as GITHUB
from shared.providers.jira.notify import NOTIFIER as JIRA
from shared.providers.notify import Notifier

NOTIFIERS: Mapping[str, Notifier] = {GITHUB.name: GITHUB, JIRA.name: JIRA}
