"""The provider catalog: what hookhub knows of each provider, gathered from its folder.

Each provider folder under `shared/providers/` that has a `catalog.py` with an `ENTRY` is a
catalog provider: `GET /api/provider-catalog` shows it, `POST /api/integrations` takes its
settings, and the gateway verifies its webhooks (`ENTRY.webhooks`). Adding a provider is
adding a folder (docs/providers.md); nothing else lists them.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from shared.kernel.errors import Invalid, NotFound
from shared.providers.base import InboundRequest, ProviderWebhooks
from shared.providers.networks import Network
from shared.providers.schemes import AnyOf, Scheme, url_params

CATEGORIES = frozenset(
    {
        "chat",
        "devtools",
        "payments",
        "commerce",
        "monitoring",
        "incidents",
        "messaging",
        "email",
        "video",
        "crm",
        "support",
        "forms",
        "scheduling",
        "productivity",
        "storage",
        "social",
        "identity",
        "generic",
    }
)
# `sync`: a chat network (`Entry.network`); `history`: its channels' history can be read
# whenever sync asks (sync's catch-up reads it, and imports through its API); `import`: its
# messages can be imported: from its export files (Telegram's), or through its API when its
# network has an API source (`Network.reads_api`) though no `history` (Google Chat: only an
# import, acting as a user the integration names, lists a space; sync hears just the
# messages that @mention the app and catches nothing up). `networks_importing()`.
CAPABILITIES = ("webhooks", "oauth", "sync", "history", "import", "actions", "notifications")


@dataclass(frozen=True)
class Setting:
    """One integration setting. A secret is sealed at rest and never returned; the others
    (a header's name, an algorithm) are shown as they were set."""

    name: str
    description: str
    secret: bool = True
    required: bool = True
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # what a value must match (fullmatch), said in `description`
    # What a value not matching `pattern` is told (else the description is repeated).
    refusal: str | None = None
    default: str | None = None
    # A secret a provider's handshake hands over that the user must copy back into the
    # provider (Notion's verification_token): shown by GET /api/integrations/{id} as
    # `pending_verification_token` until the first verified event, never afterwards.
    shown_until_first_event: bool = False
    # What the value is: text, or a whole number (given as a JSON number or as its digits;
    # kept as its digits, as every setting is kept as text).
    kind: Literal["text", "integer"] = "text"

    def text_of(self, value: object) -> str | None:
        """The value as the text it is kept as, or None when it is not of this setting's
        kind (a JSON number for a text setting, a fraction for an integer one...)."""
        if isinstance(value, str):
            return value.strip() or None
        if (
            self.kind == "integer"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            return str(int(value)) if float(value).is_integer() else None
        return None

    def expected(self) -> str:
        """What `text_of` takes, in a user's words."""
        if self.kind == "integer":
            return "a whole number (a JSON number, or a string of its digits)"
        return "a non-empty string"

    def problem(self, value: str) -> str | None:
        if self.choices and value not in self.choices:
            return f"setting {self.name} must be one of {', '.join(self.choices)}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return self.refusal or f"setting {self.name} is not valid: {self.description}"
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "secret": self.secret,
            "required": self.required,
            "description": self.description,
        }
        if self.choices:
            out["choices"] = list(self.choices)
        if self.default is not None:
            out["default"] = self.default
        if self.kind != "text":
            out["type"] = self.kind
        return out


@dataclass(frozen=True)
class Sample:
    """A webhook as the provider documents it: the body in `samples/<file>` of its folder
    (where it came from in `samples/README.md`), and the unsigned headers the provider
    sends with it (the event's name, its delivery id). The sandbox sends it, signed."""

    file: str
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    # A provider that signs a time inside the body (Linear's `webhookTimestamp`): the body
    # as the provider would send it at `now`, else the file's bytes as they are.
    stamped: Callable[[bytes, datetime], bytes] | None = None

    def body(self, provider: str) -> bytes:
        return (self.folder(provider) / self.file).read_bytes()

    @staticmethod
    def folder(provider: str) -> Path:
        """The provider's samples (and their sources, in its README.md)."""
        return Path(__file__).parent / provider / "samples"


@dataclass(frozen=True)
class Probe:
    """A provider's handshake as the provider sends it, and what the answer must be: how
    the tests check each handshake end to end, through a real gateway. `answer` None: any
    body; `stores`: the settings the handshake hands over (kept sealed)."""

    method: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    status: int = 200
    answer: bytes | None = None
    answer_headers: Mapping[str, str] = field(default_factory=dict)
    stores: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """A provider as the catalog shows it. `setup` steps write `{webhook_url}` where the
    integration's URL goes; `handshake` says what the provider checks before sending."""

    provider: str
    name: str
    category: str
    docs_url: str
    setup: tuple[str, ...]
    events: tuple[str, ...] = ()
    settings: tuple[Setting, ...] = ()
    webhooks: ProviderWebhooks | None = None
    capabilities: tuple[str, ...] = ("webhooks",)
    handshake: str | None = None
    # The scheme's name and headers, when `webhooks` is not a `Declared` (whose scheme says).
    verification: tuple[str, tuple[str, ...]] | None = None
    # A documented webhook of the provider's, which the sandbox can send signed.
    sample: Sample | None = None
    # Settings the sandbox and the tests give an integration of theirs: fresh each call
    # (random secrets); None → a random value for each setting without a default.
    example_settings: Callable[[], dict[str, str]] | None = None
    # The provider's handshake for an integration with these settings at this URL, now.
    handshake_probe: Callable[[Mapping[str, str], str, datetime], Probe] | None = None
    # A chat network's own (`sync` in its capabilities): shared.providers.networks.
    network: Network | None = None

    def examples(self) -> dict[str, str]:
        """Settings an integration of the sandbox's (or a test's) is made with."""
        if self.example_settings is not None:
            return self.example_settings()
        return {
            s.name: s.default if s.default is not None else secrets.token_urlsafe(24)
            for s in self.settings
            if s.required or s.default is not None
        }

    def __post_init__(self) -> None:
        assert self.category in CATEGORIES, self.category
        assert set(self.capabilities) <= set(CAPABILITIES), self.capabilities
        assert ("webhooks" in self.capabilities) == (self.webhooks is not None), self.provider
        assert ("sync" in self.capabilities) == (self.network is not None), self.provider
        assert "history" not in self.capabilities or self.network is not None, self.provider
        if self.notifies and "notifications" not in self.capabilities:
            object.__setattr__(self, "capabilities", (*self.capabilities, "notifications"))

    @property
    def notifies(self) -> bool:
        """Whether its webhooks can be subscriptions' notifications (SPEC §16): every
        provider sending webhooks, except the chats, whose messages are synced instead."""
        return self.webhooks is not None and self.category != "chat"

    def sender_url(self, settings: Mapping[str, str], webhook_url: str) -> str:
        """The URL to give the provider: the integration's webhook URL, with the token in
        its query for a sender that can carry a secret nowhere else (Statuspage)."""
        scheme: Scheme | None = getattr(self.webhooks, "scheme", None)
        params = url_params(scheme, settings) if scheme is not None else {}
        if not params:
            return webhook_url
        return webhook_url + ("&" if urlsplit(webhook_url).query else "?") + urlencode(params)

    def signed_sample(
        self, settings: Mapping[str, str], url: str, now: datetime, sample: Sample | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The sample (`sample`, else the entry's) as the provider would send it to `url`
        (the integration's webhook URL as given to the provider: `sender_url`) for an
        integration with `settings`: its body and headers, signed."""
        scheme: Scheme | None = getattr(self.webhooks, "scheme", None)
        sample = sample or self.sample
        if sample is None or scheme is None:
            raise LookupError(f"{self.provider} has no sample the sandbox can sign")
        body = sample.body(self.provider)
        if sample.stamped is not None:
            body = sample.stamped(body, now)
        headers = {"content-type": sample.content_type, **sample.headers}
        unsigned = InboundRequest(
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            received_at=now,
            query=dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)),
            url=url,
        )
        # A scheme whose signature is in the body (Mailgun's) writes it there first.
        signed_body: Callable[..., bytes] | None = getattr(scheme, "signed_body", None)
        if signed_body is not None:
            body = signed_body(unsigned, settings, now)
            unsigned = dataclasses.replace(unsigned, body=body)
        return body, {**headers, **scheme.sign(unsigned, settings, now)}

    def unchosen(self, settings: Mapping[str, str]) -> str | None:
        """For a sender offering several ways (`AnyOf`) with none of them set: what to set,
        in the user's words (an integration that could verify nothing is refused)."""
        scheme: Scheme | None = getattr(self.webhooks, "scheme", None)
        given = {**{s.name: s.default for s in self.settings if s.default}, **settings}
        if not isinstance(scheme, AnyOf) or scheme.configured(given):
            return None
        options = [
            " and ".join(n for n in option.settings if (s := self.setting(n)) and s.secret)
            for option in scheme.schemes
        ]
        return f"{self.provider} needs one way to check its sender: " + ", or ".join(
            o for o in options if o
        )

    def setting(self, name: str) -> Setting | None:
        return next((s for s in self.settings if s.name == name), None)

    def verification_json(self) -> dict[str, Any] | None:
        scheme: Scheme | None = getattr(self.webhooks, "scheme", None)
        if scheme is not None:
            return {"scheme": scheme.name, "headers": list(scheme.headers)}
        if self.verification is not None:
            return {"scheme": self.verification[0], "headers": list(self.verification[1])}
        return None

    def to_json(self, webhook_url: str | None = None) -> dict[str, Any]:
        """What `GET /api/provider-catalog` shows; with `webhook_url`, the setup steps have
        it filled in (the console shows an integration's own)."""
        steps = [
            step.replace("{webhook_url}", webhook_url) if webhook_url else step
            for step in self.setup
        ]
        return {
            "provider": self.provider,
            "name": self.name,
            "category": self.category,
            "capabilities": list(self.capabilities),
            "verification": self.verification_json(),
            "settings": [s.to_json() for s in self.settings],
            "handshake": self.handshake,
            "events": list(self.events),
            "setup": steps,
            "docs_url": self.docs_url,
        }


def provider_module(provider: str, part: str) -> ModuleType | None:
    """`shared.providers.<provider>.<part>`, or None when the folder has no such module."""
    name = f"shared.providers.{provider}.{part}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def _discover() -> dict[str, Entry]:
    # The folders beside this module, not the package's `__path__`: importing the package
    # here (it imports this module) would be an import cycle.
    entries: dict[str, Entry] = {}
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        found = provider_module(module.name, "catalog") if module.ispkg else None
        if found is None:
            continue  # a module, or a package that is no provider (none today)
        entry: Entry = found.ENTRY
        assert entry.provider == module.name, (entry.provider, module.name)
        entries[entry.provider] = entry
    return dict(sorted(entries.items()))


CATALOG: dict[str, Entry] = _discover()
WEBHOOK_PROVIDERS: dict[str, ProviderWebhooks] = {
    name: entry.webhooks for name, entry in CATALOG.items() if entry.webhooks is not None
}
NETWORKS: dict[str, Network] = {
    name: entry.network for name, entry in CATALOG.items() if entry.network is not None
}


def networks_with(capability: str) -> tuple[str, ...]:
    """The networks whose entries list `capability` (`history`: catch-up and imports
    through the network's API read it)."""
    return tuple(name for name in NETWORKS if capability in CATALOG[name].capabilities)


def networks_importing() -> tuple[str, ...]:
    """The networks an import through their API reads (`POST /api/integrations/{id}/import`):
    those with `history`, and those with `import` whose network has an API source."""
    return tuple(
        name
        for name, network in NETWORKS.items()
        if "history" in CATALOG[name].capabilities
        or ("import" in CATALOG[name].capabilities and network.reads_api)
    )


# -- an integration's settings ------------------------------------------------------------


def catalog_entry(provider: str) -> Entry:
    """The provider's catalog entry (its settings, its webhooks); 404 `unknown_provider`
    for one the catalog lacks: what a request names is not there, as for a webhook to it."""
    entry = CATALOG.get(str(provider))
    if entry is None:
        raise NotFound(
            f"no provider {provider!r}; GET /api/provider-catalog lists them",
            code="unknown_provider",
        )
    return entry


def check_settings(provider: str, settings: Mapping[str, Any], *, creating: bool) -> dict[str, str]:
    """Validate settings against the provider's catalog entry; return them as strings.
    Raises Invalid (422). Secret ones go to `secrets` (sealed), others to `config`
    (`split_settings`)."""
    entry = catalog_entry(provider)
    allowed = {s.name: s for s in entry.settings}
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise Invalid(
            f"{provider} takes no setting {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'none (OAuth only)'}",
            code="unknown_setting",
        )
    values: dict[str, str] = {}
    for name, value in settings.items():
        text = allowed[name].text_of(value)
        if text is None:
            raise Invalid(
                f"setting {name} must be {allowed[name].expected()}, not {_json_kind(value)}",
                code="invalid_setting",
            )
        values[name] = text
    if creating:
        missing = [
            s.name
            for s in entry.settings
            if s.required and s.name not in values and s.default is None
        ]
        if missing:
            raise Invalid(f"{provider} needs {', '.join(missing)}", code="missing_setting")
        unchosen = entry.unchosen(values)
        if unchosen is not None:
            raise Invalid(unchosen, code="missing_setting")
    for name, value in values.items():
        problem = allowed[name].problem(value)
        if problem is not None:
            raise Invalid(problem, code="invalid_setting")
    return values


def _json_kind(value: Any) -> str:
    """What a JSON value is, in a user's words (what a setting was given instead)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "an empty string"
    return "an array" if isinstance(value, list) else "an object"


def split_settings(
    provider: str, values: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(secret settings, the others): the first sealed in `secrets`, the rest in `config`."""
    entry = catalog_entry(provider)
    secret = {n: v for n, v in values.items() if (s := entry.setting(n)) is None or s.secret}
    return secret, {n: v for n, v in values.items() if n not in secret}


def defaults(provider: str) -> dict[str, str]:
    """The catalog's defaults of the settings not given (a generic source's algorithm)."""
    return {s.name: s.default for s in catalog_entry(provider).settings if s.default is not None}
