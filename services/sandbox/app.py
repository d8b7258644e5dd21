"""The sandbox (SPEC §2): every provider's stand-in, seeded, wired to the stack, behind one
port, with the page at `/sandbox/` and the JSON API it uses at `/sandbox/api/…`.

`hookhub run --sandbox` (`make sandbox`) starts it as one more process (`hookhub sandbox`)
and the edge sends `/sandbox/*` to it; the services are pointed at the stand-ins by the
environment `service_environment` gives. Each stand-in is served below `/sandbox/<name>`:
the services call them there directly (`http://127.0.0.1:<port>/sandbox/slack/api/…`), and
a browser reaches the consent pages through the origin (`<public URL>/sandbox/slack/…`).

What it holds lives in memory: a restart seeds the same world again (the same ids, so the
mappings hookhub keeps still name the same channels) with the messages gone. Its
credentials are generated once per data directory (`sandbox.json`), so integrations made
with them keep working across restarts; OAuth grants do not survive one (connect again).
Nothing of it runs unless HOOKHUB_ENV=dev.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from services.console import SECURITY_HEADERS, SecurityHeaders
from services.sandbox import FAKES, FakeGitLab, acted
from services.sandbox.atlassian import FakeAtlassian
from services.sandbox.catalog import CatalogWebhooks, SendRefused
from services.sandbox.chat import ChatProduct, ChatRefused
from services.sandbox.discord import FakeDiscord, public_key_of
from services.sandbox.exports import slack_export, slack_file_name, telegram_export
from services.sandbox.github import FakeGitHub
from services.sandbox.google import FakeGoogle
from services.sandbox.googlechat import FakeGoogleChat, pem, rsa_key
from services.sandbox.hooks import EventRefused
from services.sandbox.matrix import PEOPLE as MATRIX_PEOPLE
from services.sandbox.matrix import FakeMatrix
from services.sandbox.mattermost import ADA as MATTERMOST_ADA
from services.sandbox.mattermost import GRACE as MATTERMOST_GRACE
from services.sandbox.mattermost import FakeMattermost
from services.sandbox.mattermost import new_id as new_mattermost_id
from services.sandbox.oauth_server import Client, FakeAuthorizationServer
from services.sandbox.slack import BOT_ID, BOT_NAME, BOT_USER_ID, TEAM_ID, FakeSlack
from services.sandbox.teams import USERS as TEAMS_USERS
from services.sandbox.teams import FakeTeams
from services.sandbox.telegram import FakeTelegram
from shared.kernel.http.tls import tls
from shared.providers.catalog import CATALOG, NETWORKS
from shared.providers.googlechat.messages import ACTION_PARAMETER as GOOGLECHAT_ACTION
from shared.providers.matrix.appservice import Registration
from shared.providers.matrix.network import DEFAULT_PREFIX as MATRIX_PREFIX
from shared.providers.mattermost.actions import CONTEXT_ACTION as MATTERMOST_ACTION

STATIC = Path(__file__).parent / "static"
# The Mattermost server's people by id: (full name, username).
MATTERMOST_PEOPLE = {
    spec[0]: (f"{spec[2]} {spec[3]}", spec[1]) for spec in (MATTERMOST_ADA, MATTERMOST_GRACE)
}
# The docs the page links, served as text from the checkout the sandbox runs from (it runs
# only in dev, from a clone).
DOCS = Path(__file__).resolve().parents[2] / "docs"
LINKED_DOCS = ("walkthroughs.md", "sandbox.md", "import.md")
CREDENTIALS_FILE = "sandbox.json"
# The hookhub workspace the sandbox's walk-throughs and the console's forms use.
WORKSPACE_ID = "ws_demo"
EVENT_PROVIDERS = ("github", "jira")
MAX_BODY = 64 * 1024
MAX_TEXT = 4000
# What a network does not tell a bot, so the sandbox cannot show hookhub carrying it
# (docs/sync.md, "The networks at a glance"): the edit and delete routes' 422.
TELEGRAM_NO_DELETES = (
    "Telegram's Bot API sends a bot no update when a message is deleted, so hookhub never "
    "learns of a delete in Telegram (docs/sync.md)"
)
GOOGLECHAT_NO_CHANGES = (
    "Google Chat sends a Chat app no event when a message is edited or deleted (only the "
    "Workspace Events API tells of them, which hookhub does not receive), so hookhub never "
    "learns of an edit or a delete in Google Chat (docs/sync.md)"
)

# The seeded world. Fixed ids: hookhub's mappings name them, and survive a restart.
SLACK_CHANNELS = {"C0GENERAL": "general", "C0RANDOM": "random", "C0DEPLOYS": "deploys"}
SLACK_USERS = {"U0ALICE": "Alice Archer", "U0BOB": "Bob Baker", "U0CAROL": "Carol Chen"}
DISCORD_GUILD = ("1300000000000000001", "Acme (sandbox)")
DISCORD_BOT = ("1300000000000000009", "hookhub", "1300000000000000008")  # user, name, app
DISCORD_CHANNELS = {"1300000000000000101": "general", "1300000000000000102": "random"}
DISCORD_USERS = {
    "1300000000000000201": ("alice", "Alice Archer"),
    "1300000000000000202": ("bob", "Bob Baker"),
}
TELEGRAM_BOT = (7000000001, "hookhub_sandbox_bot")
TELEGRAM_CHATS = {-1001000000001: "Acme (sandbox)", -1001000000002: "Acme deploys"}
TELEGRAM_USERS = {
    100001: ("alice", "Alice", "Archer"),
    100002: ("bob", "Bob", "Baker"),
}

# Credentials generated per data directory: (name, prefix).
_CREDENTIALS = (
    ("slack_client_id", "1000000000001."),
    ("slack_client_secret", ""),
    ("slack_signing_secret", ""),
    ("slack_bot_token", "xoxb-1000000000001-"),
    ("discord_client_id", "1300000000000000008"),  # the bot's application: no random part
    ("discord_client_secret", ""),
    ("discord_bot_token", "MTMwMDAwMDAwMDAwMDAwMDAwOQ."),
    # The seed of the application's Ed25519 key: its interactions are signed with it, and
    # the state names its public key (the Developer Portal's "Public Key").
    ("discord_interactions_key", ""),
    ("telegram_bot_token", f"{TELEGRAM_BOT[0]}:AAH"),
    ("github_client_id", "Iv23li"),
    ("github_client_secret", ""),
    ("github_token", "ghp_"),
    ("github_webhook_secret", ""),
    ("jira_client_id", ""),
    ("jira_client_secret", ""),
    ("jira_token", ""),
    ("jira_webhook_secret", ""),
    ("gitlab_client_id", ""),
    ("gitlab_client_secret", "gloas-"),
    ("google_client_id", "sandbox.apps.googleusercontent.com-"),
    ("google_client_secret", "GOCSPX-"),
    # The Google Chat app's service account key (PEM): its key file is made from it.
    ("googlechat_account_key", ""),
    # Teams: the sandbox bot's Microsoft App ID (a GUID) and its client secret.
    ("teams_app_id", ""),
    ("teams_app_password", ""),
    # Matrix: the registration's tokens of the sandbox homeserver's one appservice.
    ("matrix_as_token", "as_"),
    ("matrix_hs_token", "hs_"),
    # The APIs acted on from the channel (services/sandbox/acted.py): their keys.
    ("pagerduty_api_token", "u+"),
    ("opsgenie_api_key", ""),
    ("sentry_api_token", "sntrys_"),
)


def credentials(data_dir: Path) -> dict[str, str]:
    """The sandbox's credentials for this data directory: made on first use, then kept (the
    file is readable by its owner alone, like the rest of the data directory)."""
    path = data_dir / CREDENTIALS_FILE
    known: dict[str, str] = {}
    if path.exists():
        known = {k: str(v) for k, v in json.loads(path.read_text()).items()}
    made = dict(known)
    for name, prefix in _CREDENTIALS:
        if not made.get(name):
            made[name] = prefix if name == "discord_client_id" else prefix + _random(name)
    if made != known:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(made, indent=2) + "\n")
    return made


def _random(name: str) -> str:
    if name.endswith("_client_id") or name == "slack_bot_token":
        return secrets.token_hex(8)
    if name == "discord_interactions_key":
        return secrets.token_hex(32)
    if name == "googlechat_account_key":
        return pem(rsa_key())
    if name == "teams_app_id":
        return str(uuid.uuid4())
    return secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")


def service_environment(creds: Mapping[str, str], port: int, public_url: str) -> dict[str, str]:
    """The HOOKHUB_* variables that point every service at the stand-ins: the API, token and
    revocation URLs at the sandbox's port, the authorization URL (a browser's) at the origin,
    and the apps' credentials."""
    direct = f"http://127.0.0.1:{port}/sandbox"
    through_origin = public_url.rstrip("/") + "/sandbox"
    env: dict[str, str] = {}
    for name, standin in FAKES.items():
        upper = f"HOOKHUB_{name.upper()}"
        env[f"{upper}_CLIENT_ID"] = creds[f"{name}_client_id"]
        env[f"{upper}_CLIENT_SECRET"] = creds[f"{name}_client_secret"]
        env[f"{upper}_AUTHORIZE_URL"] = f"{through_origin}/{name}{standin.authorize_path}"
        env[f"{upper}_TOKEN_URL"] = f"{direct}/{name}{standin.token_path}"
        env[f"{upper}_API_BASE"] = f"{direct}/{name}{standin.api_path}"
        if standin.revoke_path:
            env[f"{upper}_REVOKE_URL"] = f"{direct}/{name}{standin.revoke_path}"
    env["HOOKHUB_SLACK_SIGNING_SECRET"] = creds["slack_signing_secret"]
    # The app's key, as for Slack's signing secret: an integration's own `public_key` wins.
    env["HOOKHUB_DISCORD_PUBLIC_KEY"] = public_key_of(
        bytes.fromhex(creds["discord_interactions_key"])
    )
    env["HOOKHUB_TELEGRAM_API_BASE"] = f"{direct}/telegram"
    # Google Chat: its API, token endpoint and certificates, all the stand-in's.
    env["HOOKHUB_GOOGLECHAT_API_BASE"] = f"{direct}/googlechat"
    env["HOOKHUB_GOOGLECHAT_TOKEN_URL"] = f"{direct}/googlechat/token"
    env["HOOKHUB_GOOGLECHAT_OAUTH2_CERTS_URL"] = f"{direct}/googlechat/oauth2/v1/certs"
    env["HOOKHUB_GOOGLECHAT_CHAT_CERTS_URL"] = (
        f"{direct}/googlechat/service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com"
    )
    # Teams: the Bot Framework's keys, Microsoft's login and the Connector, the stand-in's.
    env["HOOKHUB_TEAMS_OPENID_METADATA_URL"] = f"{direct}/teams/v1/.well-known/openidconfiguration"
    env["HOOKHUB_TEAMS_LOGIN_BASE"] = f"{direct}/teams"
    env["HOOKHUB_TEAMS_SERVICE_URL"] = f"{direct}/teams/teams/"
    # PagerDuty, Opsgenie and Sentry: the APIs acted on from the channel.
    env |= acted.env(direct)
    return env


@dataclass(frozen=True)
class ChatStandIn:
    """A network's stand-in as the page drives it: a user writes in a channel (`channel`,
    `user`, `text`, `thread`: "" for none), what a channel holds, and the network's sample
    export, if the sandbox has one: the importer's `source` for it, and the file (bytes,
    media type, name)."""

    write: Callable[[str, str, str, str], Awaitable[dict[str, Any]]]
    messages: Callable[[str], list[dict[str, Any]]]
    export: tuple[str, Callable[[], tuple[bytes, str, str]]] | None = None
    # What the page writes before a channel's name: "#general"; a Telegram chat's title bare.
    channel_mark: str = "#"
    # The settings an integration of this stand-in is made with (POST /api/integrations).
    settings: Callable[[], dict[str, str]] = dict
    # A user edits (`channel`, message id, new `text`) or deletes (`channel`, message id)
    # their message, and the network tells hookhub as it does; None where it tells a bot
    # nothing of it, and `cannot` says why (`edit`, `delete`: the routes' 422).
    edit: Callable[[str, str, str], Awaitable[dict[str, Any]]] | None = None
    delete: Callable[[str, str], Awaitable[dict[str, Any]]] | None = None
    cannot: Mapping[str, str] = field(default_factory=dict)
    # A card's buttons as the network shows them (`channel`, message id: `[{action,
    # label}]`, `action` hookhub's action id), and a user's click of one (`channel`, message
    # id, action, user), sent as the network signs its interactions; None where the
    # network has no buttons.
    buttons: Callable[[str, str], list[dict[str, str]]] | None = None
    click: Callable[[str, str, str, str], Awaitable[dict[str, Any]]] | None = None
    # A user types hookhub's command (`channel`, `user`, the words after `/hookhub`), sent
    # as the network sends its command; None where the sandbox has none for it.
    command: Callable[[str, str, str], Awaitable[dict[str, Any]]] | None = None
    # What hookhub said to one of its users alone (an ask to link with their ticket):
    # `[{user, channel, text}]`, oldest first; None where the network has no clicks.
    private: Callable[[], list[dict[str, Any]]] | None = None

    def can(self) -> dict[str, bool]:
        return {
            "edit": self.edit is not None,
            "delete": self.delete is not None,
            "click": self.click is not None,
            "command": self.command is not None,
            "private": self.private is not None,
        }

    def page(self, network: str) -> dict[str, Any]:
        """What the page shows of it (`chats` in the state)."""
        sample = None
        if self.export is not None:
            source = self.export[0]
            sample = {"source": source, "what": NETWORKS[network].exports[source].description}
        return {
            "name": CATALOG[network].name,
            "channel_mark": self.channel_mark,
            "export": sample,
            "settings": self.settings(),
            "can": self.can(),
            "cannot": dict(self.cannot),
        }


class SandboxError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Sandbox:
    """The stand-ins, seeded, and the app that serves them, the page and the JSON API.

    `origin`: where hookhub answers from here (the app-level webhook URLs the stand-ins send
    to); `public_url`: what hookhub hands out (its callback URL, the stand-ins' browser
    URLs); `admin_token`: to find the GitHub and Jira integrations to send events to.
    """

    def __init__(
        self,
        creds: Mapping[str, str],
        *,
        port: int,
        public_url: str,
        origin: str,
        admin_token: str = "",
        chat_inbound: tuple[str, str] | None = None,
    ) -> None:
        """`chat_inbound`: the broker and the topic `hookhub.chat.inbound` is, which the
        chat product's part reads (None: the page's chat shows nothing)."""
        self.creds = dict(creds)
        self.public_url = public_url.rstrip("/")
        self.origin = origin.rstrip("/")
        self.admin_token = admin_token
        self.direct = f"http://127.0.0.1:{port}/sandbox"
        callback = self.public_url + "/api/auth/oauth/callback"

        def client(name: str) -> Client:
            return Client(creds[f"{name}_client_id"], creds[f"{name}_client_secret"], callback)

        self.slack = FakeSlack(client=client("slack"), consent=True)
        self.discord = FakeDiscord(client=client("discord"), consent=True)
        self.github = FakeGitHub(client=client("github"), consent=True)
        self.jira = FakeAtlassian(client=client("jira"), consent=True)
        self.google = FakeGoogle(client=client("google"), consent=True)
        self.gitlab = FakeGitLab(client=client("gitlab"), consent=True)
        self.telegram = FakeTelegram()
        # Mattermost: a server of its own here (team, channel, bot, two people), its REST API
        # and WebSocket under /sandbox/mattermost: an integration's `server_url`.
        self.mattermost = FakeMattermost()
        self.mattermost.base_url = f"{self.direct}/mattermost"
        # The /hookhub custom slash command's token (its Request URL is the mattermost
        # integration's webhook_url, found when it is first typed).
        self.mattermost_command_token = new_mattermost_id()
        self.googlechat = FakeGoogleChat(
            base_url=f"{self.direct}/googlechat", account_pem=creds["googlechat_account_key"]
        )
        # Teams: one bot (the credentials' app id and password), its Connector under
        # /sandbox/teams; activities go to the teams integration's webhook URL.
        self.teams = FakeTeams(base_url=f"{self.direct}/teams")
        self.teams_bot = self.teams.add_bot(creds["teams_app_id"], creds["teams_app_password"])
        # Matrix: a homeserver under /sandbox/matrix (an integration's homeserver_url) with
        # hookhub's appservice registered; its url is the matrix integration's webhook URL,
        # found when a user first writes (`_matrix_writes`).
        self.matrix = FakeMatrix()
        self.matrix.register_appservice(
            Registration(
                id="hookhub-sandbox",
                url="",
                as_token=creds["matrix_as_token"],
                hs_token=creds["matrix_hs_token"],
                prefix=MATRIX_PREFIX,
            ).as_dict()
        )
        self.oauth: dict[str, FakeAuthorizationServer] = {
            "slack": self.slack,
            "discord": self.discord,
            "github": self.github,
            "jira": self.jira,
            "google": self.google,
            "gitlab": self.gitlab,
        }
        for name, standin in self.oauth.items():
            standin.base_url = f"{self.direct}/{name}"
        # Every other provider of the catalog: its documented webhook, signed (SPEC §15).
        # The APIs acted on from the channel, and the people acting (every network's users
        # with buttons, and the chat's).
        self.acted = acted.ActedOn(
            self.direct,
            creds,
            acted.people(
                {
                    "slack": SLACK_USERS,
                    "discord": {k: v[1] for k, v in DISCORD_USERS.items()},
                    "teams": {u["aadObjectId"]: u["name"] for u in TEAMS_USERS.values()},
                    "telegram": {str(k): f"{v[1]} {v[2]}" for k, v in TELEGRAM_USERS.items()},
                    "mattermost": {k: v[0] for k, v in MATTERMOST_PEOPLE.items()},
                    "googlechat": {
                        u["name"].removeprefix("users/"): u["displayName"]
                        for u in self.googlechat.users.values()
                    },
                }
            ),
        )
        self.catalog = CatalogWebhooks(self.origin, admin_token, WORKSPACE_ID, self.acted)
        # The chat product's part: what hookhub hands the chat, and its users' clicks.
        bootstrap, topic = chat_inbound or (None, "")
        self.chat = ChatProduct(bootstrap, topic, self.origin, admin_token, WORKSPACE_ID)
        self._seed()
        # Every chat network's stand-in (tests/providers/test_networks.py: one for each).
        self.chats: dict[str, ChatStandIn] = {
            "slack": ChatStandIn(
                self._slack_writes,
                self._slack_messages,
                ("slack_export", self._slack_export),
                settings=lambda: {"bot_token": creds["slack_bot_token"]},
                edit=self._slack_edits,
                delete=self._slack_deletes,
                buttons=self._slack_buttons,
                click=self._slack_clicks,
                command=self._slack_commands,
                private=lambda: [
                    {"user": e["user"], "channel": e["channel"], "text": e["text"]}
                    for e in self.slack.ephemeral
                ],
            ),
            "discord": ChatStandIn(
                self._discord_writes,
                self._discord_messages,
                settings=lambda: {
                    "bot_token": creds["discord_bot_token"],
                    "public_key": self._discord_bot().public_key,
                },
                edit=self._discord_edits,
                delete=self._discord_deletes,
                buttons=self._discord_buttons,
                click=self._discord_clicks,
                command=self._discord_commands,
                private=lambda: [
                    {"user": f["user_id"], "channel": f["channel_id"], "text": f["content"]}
                    for f in self.discord.followups
                    if f["ephemeral"]
                ],
            ),
            "telegram": ChatStandIn(
                self._telegram_writes,
                self._telegram_messages,
                ("telegram_export", self._telegram_sample),
                channel_mark="",
                settings=lambda: {"bot_token": creds["telegram_bot_token"]},
                edit=self._telegram_edits,
                cannot={"delete": TELEGRAM_NO_DELETES},
                buttons=self._telegram_buttons,
                click=self._telegram_clicks,
                command=self._telegram_commands,
                private=lambda: [
                    {"user": str(c.id), "channel": str(c.id), "text": m.get("text", "")}
                    for c in self.telegram.chats.values()
                    if c.type == "private"
                    for m in c.messages.values()
                    if (m.get("from") or {}).get("is_bot")
                ],
            ),
            "googlechat": ChatStandIn(
                self._googlechat_writes,
                self._googlechat_messages,
                channel_mark="",
                settings=lambda: {
                    "service_account_json": self.googlechat.service_account_json(),
                    "audience": self.googlechat.audience,
                },
                cannot={"edit": GOOGLECHAT_NO_CHANGES, "delete": GOOGLECHAT_NO_CHANGES},
                buttons=self._googlechat_buttons,
                click=self._googlechat_clicks,
                command=self._googlechat_commands,
                private=lambda: [
                    # The viewer as the state names the space's users (`users/{id}`).
                    {
                        "user": self.googlechat.users[p["viewer"]]["name"],
                        "channel": p["space"]["name"],
                        "text": p["text"],
                    }
                    for p in self.googlechat.private
                ],
            ),
            "teams": ChatStandIn(
                self._teams_writes,
                self._teams_messages,
                settings=lambda: {
                    "app_id": self.teams_bot.app_id,
                    "app_password": self.teams_bot.password,
                    "service_url": self.teams.service_url,
                },
                edit=self._teams_edits,
                delete=self._teams_deletes,
                buttons=self._teams_buttons,
                click=self._teams_clicks,
                command=self._teams_commands,
                private=lambda: [
                    # As the channels' messages: Teams shows its HTML as text.
                    {"user": user, "channel": "", "text": _teams_text(m["text"])}
                    for user in TEAMS_USERS
                    for m in self.teams.personal_messages(user)
                ],
            ),
            "matrix": ChatStandIn(
                self._matrix_writes,
                self._matrix_messages,
                channel_mark="",
                settings=lambda: {
                    "homeserver_url": f"{self.direct}/matrix",
                    "as_token": creds["matrix_as_token"],
                    "hs_token": creds["matrix_hs_token"],
                },
                edit=self._matrix_edits,
                delete=self._matrix_deletes,
                command=self._matrix_commands,
            ),
            "mattermost": ChatStandIn(
                self._mattermost_writes,
                self._mattermost_messages,
                settings=lambda: {
                    "server_url": self.mattermost.base_url,
                    "bot_token": self.mattermost.bot_token,
                    "command_token": self.mattermost_command_token,
                },
                edit=self._mattermost_edits,
                delete=self._mattermost_deletes,
                buttons=self._mattermost_buttons,
                click=self._mattermost_clicks,
                command=self._mattermost_commands,
                private=self._mattermost_private,
            ),
        }

    # -- the world ------------------------------------------------------------------------

    def _seed(self) -> None:
        creds = self.creds
        slack = self.slack
        slack.add_bot_token(creds["slack_bot_token"])
        slack.signing_secret = creds["slack_signing_secret"]
        # Slack's one Request URL per app: hookhub's app-level URL, which routes by team.
        slack.events_url = self.origin + "/api/webhooks/slack"
        for channel_id, name in SLACK_CHANNELS.items():
            slack.add_channel(channel_id, name)
        for user_id, name in SLACK_USERS.items():
            slack.add_user(user_id, name, display_name=name.split()[0].lower())
        slack.add_user(BOT_USER_ID, BOT_NAME, bot_id=BOT_ID)

        discord = self.discord
        user_id, username, application_id = DISCORD_BOT
        discord.add_bot(
            creds["discord_bot_token"],
            user_id,
            username,
            application_id,
            signing_seed=bytes.fromhex(creds["discord_interactions_key"]),
        )
        discord.add_guild(*DISCORD_GUILD)
        for channel_id, name in DISCORD_CHANNELS.items():
            discord.add_channel(channel_id, DISCORD_GUILD[0], name)
        for discord_user, (handle, display) in DISCORD_USERS.items():
            discord.add_user(discord_user, handle, global_name=display)

        telegram = self.telegram
        telegram.add_bot(creds["telegram_bot_token"], *TELEGRAM_BOT)
        for chat_id, title in TELEGRAM_CHATS.items():
            telegram.add_chat(chat_id, "supergroup", title)
        # The sample export's history came first: what is said live is numbered after it.
        users = [(user_id, first, last) for user_id, (_, first, last) in TELEGRAM_USERS.items()]
        self.telegram_export, next_ids = telegram_export(list(TELEGRAM_CHATS.items()), users)
        for chat_id, next_id in next_ids.items():
            telegram.chats[chat_id].next_message_id = next_id

        # Google Chat: the stand-in's "General" space, and one more.
        self.googlechat.add_space("spaces/AAAAdeploys", "Deploys")

        self.github.personal_access_token = creds["github_token"]
        self.github.seed_demo()
        self.jira.api_token = creds["jira_token"]
        self.jira.seed_demo()
        self.jira.acts_on_world = True  # its issues, moved from a card, move here
        self.github.acts_on_world = True  # its issues and pull requests too
        # Who consents at its consent page: the site's Ada Lovelace (the Teams user who
        # clicks first in docs/sandbox.md's trial), so "assign to me" assigns someone the
        # site knows and its webhook edits the card.
        ada = next(u for u in self.jira.world.users.values() if u.display_name == "Ada Lovelace")
        self.jira.people[self.jira.user] = {
            "accountId": ada.account_id,
            "displayName": ada.display_name,
        }

    # -- what the API answers -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        creds = self.creds
        return {
            "workspace_id": WORKSPACE_ID,
            # The networks' tabs of the page, each with its sample export.
            "chats": {name: chat.page(name) for name, chat in self.chats.items()},
            "hookhub": {
                "origin": self.public_url,
                "callback_url": self.public_url + "/api/auth/oauth/callback",
            },
            "slack": {
                "base_url": f"{self.direct}/slack",
                "api_base": f"{self.direct}/slack/api",
                "team": {"id": TEAM_ID, "name": FakeSlack.team["name"]},
                "bot_token": creds["slack_bot_token"],
                "signing_secret": creds["slack_signing_secret"],
                "client_id": creds["slack_client_id"],
                "events_url": self.slack.events_url,
                "channels": [{"id": c.id, "name": c.name} for c in self.slack.channels.values()],
                "users": [
                    {"id": u["id"], "name": u["real_name"]}
                    for u in self.slack.users.values()
                    if not u["is_bot"]
                ],
            },
            "discord": {
                "base_url": f"{self.direct}/discord",
                "api_base": f"{self.direct}/discord/api/v10",
                "guild": {"id": DISCORD_GUILD[0], "name": DISCORD_GUILD[1]},
                "bot_token": creds["discord_bot_token"],
                "application_id": DISCORD_BOT[2],
                "client_id": creds["discord_client_id"],
                # What the sandbox signs the application's interactions with (Ed25519).
                "public_key": self._discord_bot().public_key,
                # Set with PATCH {api_base}/applications/@me, as in Discord.
                "interactions_url": self._discord_bot().interactions_endpoint_url,
                # Whether a Gateway session is open (hookhub's sync connected the bot).
                "connected": bool(self.discord.sessions()),
                "channels": [{"id": c.id, "name": c.name} for c in self.discord.channels.values()],
                "users": [
                    {"id": u["id"], "name": u["global_name"] or u["username"]}
                    for u in self.discord.users.values()
                ],
            },
            "telegram": {
                "base_url": f"{self.direct}/telegram",
                "bot_token": creds["telegram_bot_token"],
                "bot": {"id": TELEGRAM_BOT[0], "username": TELEGRAM_BOT[1]},
                "webhook": _webhook_of(self.telegram, creds["telegram_bot_token"]),
                "channels": [
                    {"id": str(c.id), "name": c.title} for c in self.telegram.chats.values()
                ],
                "users": [
                    {"id": str(user_id), "name": f"{first} {last}"}
                    for user_id, (_, first, last) in TELEGRAM_USERS.items()
                ],
            },
            "mattermost": {
                # An integration's settings: server_url and bot_token.
                "server_url": self.mattermost.base_url,
                "bot_token": self.mattermost.bot_token,
                "team": {"id": self.mattermost.team_id, "name": self.mattermost.team_name},
                "connected": self.mattermost.connections > 0,
                "channels": [
                    {"id": c.id, "name": c.name}
                    for c in self.mattermost.channels.values()
                    if c.type != "D"  # direct message channels are no channels to map
                ],
                "users": [
                    {"id": u.id, "name": f"{u.first_name} {u.last_name}".strip() or u.username}
                    for u in self.mattermost.users.values()
                    if not u.is_bot
                ],
            },
            "teams": {
                "base_url": f"{self.direct}/teams",
                # An integration's settings: app_id, app_password, service_url.
                "app_id": self.teams_bot.app_id,
                "app_password": self.teams_bot.password,
                "service_url": self.teams.service_url,
                # The bot's messaging endpoint (found at the first write: the teams
                # integration's webhook_url).
                "messaging_endpoint": self.teams_bot.endpoint,
                "channels": [
                    {"id": c.id, "name": c.name}
                    for c in self.teams.channels.values()
                    if c.personal is None  # the bot's one-on-one chats are no team's channels
                ],
                "users": [{"id": k, "name": u["name"]} for k, u in TEAMS_USERS.items()],
            },
            "googlechat": {
                "base_url": f"{self.direct}/googlechat",
                # The integration's service_account_json setting.
                "service_account_json": self.googlechat.service_account_json(),
                # The app's connection settings (PUT {base_url}/app, or found at the first
                # write: the googlechat integration's webhook_url).
                "endpoint_url": self.googlechat.endpoint_url or None,
                "audience": self.googlechat.audience,
                "channels": [
                    {"id": s.name, "name": s.display_name} for s in self.googlechat.spaces.values()
                ],
                # `email`: what a googlechat integration's import_as may name (domain-wide
                # delegation to the service account is granted in the stand-in).
                "users": [
                    {"id": u["name"], "name": u["displayName"], "email": u["email"]}
                    for u in self.googlechat.users.values()
                ],
            },
            "matrix": {
                # The integration's homeserver_url; the appservice's url is the matrix
                # integration's webhook URL (found at the first write).
                "homeserver_url": f"{self.direct}/matrix",
                "appservice_url": (self.matrix.appservice.url or None)
                if self.matrix.appservice
                else None,
                "channels": [{"id": r.id, "name": r.name} for r in self.matrix.rooms.values()],
                "users": [{"id": self.matrix.user_id(p), "name": p.title()} for p in MATRIX_PEOPLE],
            },
            "github": {
                **self.github.state(),
                "api_base": f"{self.direct}/github{FakeGitHub.api_path}",
                "token": creds["github_token"],
                "webhook_secret": creds["github_webhook_secret"],
                "client_id": creds["github_client_id"],
            },
            "jira": {
                **self.jira.state(),
                "api_base": f"{self.direct}/jira{FakeAtlassian.api_path}",
                "token": creds["jira_token"],
                "webhook_secret": creds["jira_webhook_secret"],
                "client_id": creds["jira_client_id"],
            },
            "google": {"base_url": f"{self.direct}/google", "client_id": creds["google_client_id"]},
            # The APIs acted on from the channel: what they hold, and hookhub's calls.
            **self.acted.state(),
            # The chat product's part: its users, the channels hookhub wrote in.
            "chat": self.chat.state(),
        }

    def _discord_bot(self) -> Any:
        return self.discord.bots[self.creds["discord_bot_token"]]

    def _discord_interactions_url(self) -> None:
        """409 while the application has no Interactions Endpoint URL."""
        if not self._discord_bot().interactions_endpoint_url:
            raise SandboxError(
                409,
                "no_interactions_url",
                "the sandbox Discord application has no Interactions Endpoint URL: set it "
                "to your Discord integration's webhook_url with PATCH "
                f"{self.direct}/discord/api/v10/applications/@me "
                '{"interactions_endpoint_url": "…"} (docs/walkthroughs.md)',
            )

    async def interact(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A Discord user runs a slash command: the interaction goes, signed, to the
        application's Interactions Endpoint URL (hookhub's, once set)."""
        channel = _text(body, "channel", required=True)
        user = _text(body, "user", required=True)
        command = _text(body, "command", required=True).removeprefix("/")
        text = _text(body, "text")
        self._discord_channel(channel)
        user_id = _find_user(user, DISCORD_USERS)
        self._discord_interactions_url()
        try:
            status, answer = await self.discord.interact(
                self.creds["discord_bot_token"],
                channel,
                user_id,
                command,
                {"text": text} if text else None,
            )
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the Interactions Endpoint URL did not answer: {exc!r}"
            ) from None
        return {"delivered": status, "response": answer}

    async def write(self, provider: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A user writes in a channel, delivered to hookhub as the network would."""
        channel = _text(body, "channel", required=True)
        user = _text(body, "user", required=True)
        text = _written(body)
        thread = _text(body, "thread")
        return await self.chats[provider].write(channel, user, text, thread)

    async def edit(self, provider: str, message: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A user edits their message in a channel, told to hookhub as the network tells of
        an edit."""
        chat = self.chats[provider]
        self._able(provider, "edit")
        text = _written(body)
        channel = self._users_message(provider, message, body)
        assert chat.edit is not None
        return await chat.edit(channel, message, text)

    async def delete(self, provider: str, message: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A user deletes their message in a channel, told to hookhub as the network tells
        of a delete."""
        chat = self.chats[provider]
        self._able(provider, "delete")
        channel = self._users_message(provider, message, body)
        assert chat.delete is not None
        return await chat.delete(channel, message)

    def _able(self, provider: str, action: str) -> None:
        """422 where the network tells a bot nothing of an `action` (edit, delete)."""
        chat = self.chats[provider]
        if not chat.can()[action]:
            raise SandboxError(422, "unsupported", chat.cannot[action])

    def _users_message(self, provider: str, message: str, body: Mapping[str, Any]) -> str:
        """The body's channel, which holds `message`, a user's (404 for a channel or a
        message not there; 422 for hookhub's own post, which the chat product changes)."""
        channel = _text(body, "channel", required=True)
        found = next((m for m in self.messages(provider, channel) if m["id"] == message), None)
        if found is None:
            raise SandboxError(404, "not_found", f"no message {message} in {channel}")
        if found["from_hookhub"]:
            raise SandboxError(
                422,
                "hookhub_post",
                f"{message} is hookhub's post: the chat product edits or deletes it "
                "(message.updated, message.deleted through POST /api/events)",
            )
        return channel

    def messages(self, provider: str, channel: str) -> list[dict[str, Any]]:
        """What is in a channel now, oldest first, in one shape for every network, each
        message with its buttons."""
        chat = self.chats[provider]
        items = chat.messages(channel)
        for item in items:
            item["buttons"] = chat.buttons(channel, item["id"]) if chat.buttons else []
        return items

    async def click(self, provider: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A user clicks a button of a message in a channel, sent to hookhub as the network
        sends its interactions."""
        chat = self.chats[provider]
        if chat.click is None or chat.buttons is None:
            raise SandboxError(
                422, "unsupported", f"{CATALOG[provider].name}'s cards have no buttons here"
            )
        channel = _text(body, "channel", required=True)
        message = _text(body, "message", required=True)
        action = _text(body, "action", required=True)
        user = _text(body, "user", required=True)
        if not any(m["id"] == message for m in chat.messages(channel)):
            raise SandboxError(404, "not_found", f"no message {message} in {channel}")
        offered = [b["action"] for b in chat.buttons(channel, message)]
        if action not in offered:
            raise SandboxError(
                422,
                "invalid",
                f"message {message} has no button {action!r}: "
                + (", ".join(offered) if offered else "it has none"),
            )
        return await chat.click(channel, message, action, user)

    async def command(self, provider: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A user types `/hookhub <text>` in a channel, sent to hookhub as the network sends
        its command (its answer comes in the channel, or to the user alone)."""
        chat = self.chats[provider]
        if chat.command is None:
            raise SandboxError(
                422, "unsupported", f"{CATALOG[provider].name} has no /hookhub command here"
            )
        channel = _text(body, "channel", required=True)
        user = _text(body, "user", required=True)
        text = _text(body, "text").strip().removeprefix("/hookhub").strip()
        return await chat.command(channel, user, text)

    async def _slack_commands(self, channel: str, user: str, text: str) -> dict[str, Any]:
        self._slack_channel(channel)
        user_id = _find_user(user, {k: (v, v.split()[0].lower()) for k, v in SLACK_USERS.items()})
        delivery = await self.slack.command(channel, user_id, text)
        return {"delivered": delivery.status or None}

    async def _discord_commands(self, channel: str, user: str, text: str) -> dict[str, Any]:
        """`/hookhub <verb> <words>` as the registered command's subcommand (docs/acting.md:
        one string option after it)."""
        self._discord_channel(channel)
        user_id = _find_user(user, DISCORD_USERS)
        self._discord_interactions_url()
        verb, _, words = text.partition(" ")
        options = [{"type": 3, "name": "words", "value": words.strip()}] if words.strip() else []
        subcommand = [{"type": 1, "name": verb or "help", "options": options}]
        try:
            status, answer = await self.discord.interact(
                self.creds["discord_bot_token"], channel, user_id, "hookhub", subcommand
            )
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the Interactions Endpoint URL did not answer: {exc!r}"
            ) from None
        return {"delivered": status, "response": answer}

    async def _telegram_commands(self, channel: str, user: str, text: str) -> dict[str, Any]:
        chat = self._telegram_chat(channel)
        status = await self.telegram.user_commands(
            chat.id, _telegram_person(user), "hookhub", text, token=self.creds["telegram_bot_token"]
        )
        return {"delivered": status or None}

    async def _teams_commands(self, channel: str, user: str, text: str) -> dict[str, Any]:
        """A message to the bot: its @mention, then the command's words."""
        teams = self.teams
        if channel not in teams.channels:
            raise SandboxError(404, "not_found", f"no Teams channel {channel}")
        names = {k: (u["id"], u["name"]) for k, u in TEAMS_USERS.items()}
        person = _find_user(user, names)
        return await self._teams_tells(
            lambda: teams.user_sends(self.teams_bot, channel, person, text, mention_bot=True)
        )

    async def _googlechat_commands(self, channel: str, user: str, text: str) -> dict[str, Any]:
        chat = self.googlechat
        if channel not in chat.spaces:
            raise SandboxError(404, "not_found", f"no Google Chat space {channel}")
        names = {u["name"]: (u["displayName"], k) for k, u in chat.users.items()}
        person = names[_find_user(user, names)][1]
        await self._googlechat_endpoint()
        try:
            answer = await chat.deliver(chat.command_event(channel, person, text))
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the app's endpoint did not answer: {exc!r}"
            ) from None
        return {"delivered": answer.status_code}

    async def _mattermost_commands(self, channel: str, user: str, text: str) -> dict[str, Any]:
        """The /hookhub custom slash command, its Request URL the integration's URL."""
        mattermost = self.mattermost
        if channel not in mattermost.channels:
            raise SandboxError(404, "not_found", f"no Mattermost channel {channel}")
        url = await self._webhook_url("mattermost")
        if not url:
            raise SandboxError(
                409,
                "no_integration",
                "create a mattermost integration first (its URL is "
                "the slash command's Request URL)",
            )
        mattermost.slash_commands["hookhub"] = (url, self.mattermost_command_token)
        people = {
            spec[0]: (f"{spec[2]} {spec[3]}", spec[1])
            for spec in (MATTERMOST_ADA, MATTERMOST_GRACE)
        }
        answer, _ = await mattermost.user_runs(_find_user(user, people), channel, text)
        return {"delivered": answer.status_code}

    async def _slack_writes(
        self, channel: str, user: str, text: str, thread: str
    ) -> dict[str, Any]:
        self._slack_channel(channel)
        user_id = _find_user(user, {k: (v, v.split()[0].lower()) for k, v in SLACK_USERS.items()})
        if thread and self.slack.message(channel, thread) is None:
            raise SandboxError(404, "not_found", f"no message {thread} in {channel}")
        before = len(self.slack.deliveries)
        ts = await self.slack.post_as_user(channel, user_id, text, thread_ts=thread)
        delivered = self.slack.deliveries[before:]
        return {"id": ts, "delivered": delivered[0].status if delivered else None}

    async def _slack_edits(self, channel: str, ts: str, text: str) -> dict[str, Any]:
        delivery = await self.slack.edit_as_user(channel, ts, text)
        return {"id": ts, "delivered": delivery.status if delivery else None}

    async def _slack_deletes(self, channel: str, ts: str) -> dict[str, Any]:
        delivery = await self.slack.delete_as_user(channel, ts)
        return {"id": ts, "delivered": delivery.status if delivery else None}

    def _slack_buttons(self, channel: str, ts: str) -> list[dict[str, str]]:
        return [
            {"action": b["action_id"], "label": b["text"]["text"]}
            for b in self.slack.buttons(channel, ts)
        ]

    async def _slack_clicks(self, channel: str, ts: str, action: str, user: str) -> dict[str, Any]:
        user_id = _find_user(user, {k: (v, v.split()[0].lower()) for k, v in SLACK_USERS.items()})
        delivery = await self.slack.click(channel, ts, action, user_id)
        return {"delivered": delivery.status or None}

    def _slack_messages(self, channel: str) -> list[dict[str, Any]]:
        found = self._slack_channel(channel)
        users = self.slack.users
        items = sorted(found.messages.values(), key=lambda m: float(m["ts"]))
        return [_slack_message(m, users) for m in items]

    def _slack_export(self) -> tuple[bytes, str, str]:
        channels = [{"id": c.id, "name": c.name} for c in self.slack.channels.values()]
        users = list(self.slack.users.values())
        zipped = slack_export(TEAM_ID, channels, users)
        return zipped, "application/zip", slack_file_name()

    async def _discord_writes(
        self, channel: str, user: str, text: str, thread: str
    ) -> dict[str, Any]:
        self._discord_channel(channel)
        user_id = _find_user(user, DISCORD_USERS)
        if thread and self.discord.message(channel, thread) is None:
            raise SandboxError(404, "not_found", f"no message {thread} in {channel}")
        message = await self.discord.user_sends(channel, user_id, text, reply_to=thread or None)
        return {"id": message["id"], "delivered": self.discord.sessions() != []}

    async def _discord_edits(self, channel: str, message: str, text: str) -> dict[str, Any]:
        await self.discord.user_edits(channel, message, text)
        return {"id": message, "delivered": self.discord.sessions() != []}

    async def _discord_deletes(self, channel: str, message: str) -> dict[str, Any]:
        await self.discord.user_deletes(channel, message)
        return {"id": message, "delivered": self.discord.sessions() != []}

    def _discord_buttons(self, channel: str, message: str) -> list[dict[str, str]]:
        return _prefixed(
            (b.get("custom_id", ""), b.get("label", ""))
            for b in self.discord.buttons(channel, message)
        )

    async def _discord_clicks(
        self, channel: str, message: str, action: str, user: str
    ) -> dict[str, Any]:
        user_id = _find_user(user, DISCORD_USERS)
        self._discord_interactions_url()
        try:
            status, _ = await self.discord.click(
                self.creds["discord_bot_token"], channel, message, BUTTON + action, user_id
            )
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the Interactions Endpoint URL did not answer: {exc!r}"
            ) from None
        return {"delivered": status}

    async def _mattermost_writes(
        self, channel: str, user: str, text: str, thread: str
    ) -> dict[str, Any]:
        mattermost = self.mattermost
        if channel not in mattermost.channels:
            raise SandboxError(404, "not_found", f"no Mattermost channel {channel}")
        user_id = _mattermost_user(user)
        if thread and (mattermost.post(thread) or {}).get("channel_id") != channel:
            raise SandboxError(404, "not_found", f"no post {thread} in {channel}")
        post = await mattermost.user_posts(user_id, channel, text, root_id=thread)
        return {"id": post["id"], "delivered": mattermost.connections > 0}

    async def _mattermost_edits(self, channel: str, post: str, text: str) -> dict[str, Any]:
        await self.mattermost.user_edits(post, text)
        return {"id": post, "delivered": self.mattermost.connections > 0}

    async def _mattermost_deletes(self, channel: str, post: str) -> dict[str, Any]:
        await self.mattermost.user_deletes(post)
        return {"id": post, "delivered": self.mattermost.connections > 0}

    def _mattermost_buttons(self, channel: str, post: str) -> list[dict[str, str]]:
        shown = []
        for button in self.mattermost.buttons(post):
            context = (button.get("integration") or {}).get("context") or {}
            action = str(context.get(MATTERMOST_ACTION, ""))
            shown.append({"action": action, "label": button["name"]})
        return shown

    async def _mattermost_clicks(
        self, channel: str, post: str, action: str, user: str
    ) -> dict[str, Any]:
        """The server's request to the button's integration URL, as Mattermost makes it."""
        name = _label(self._mattermost_buttons(channel, post), action)
        try:
            answer = await self.mattermost.click(post, name, _mattermost_user(user))
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the integration URL did not answer: {exc!r}"
            ) from None
        return {"delivered": answer.status_code}

    def _mattermost_private(self) -> list[dict[str, Any]]:
        """Its ephemeral posts and the bot's direct messages, each to its one user."""
        fake = self.mattermost
        shown = [
            {"user": e["user_id"], "channel": e["post"]["channel_id"], "text": e["post"]["message"]}
            for e in fake.ephemeral
        ]
        for channel in fake.channels.values():
            if channel.type == "D":
                user = next((m for m in channel.members if not fake.users[m].is_bot), "")
                shown += [
                    {"user": user, "channel": channel.id, "text": p["message"]}
                    for p in channel.posts.values()
                ]
        return shown

    def _mattermost_messages(self, channel: str) -> list[dict[str, Any]]:
        mattermost = self.mattermost
        if channel not in mattermost.channels:
            raise SandboxError(404, "not_found", f"no Mattermost channel {channel}")
        shown = []
        for post in mattermost.live_posts(channel):
            props = post.get("props") or {}
            author = mattermost.users.get(post["user_id"])
            name = props.get("override_username") or (author.username if author else "")
            shown.append(
                {
                    "id": post["id"],
                    "user": {"id": post["user_id"], "name": name},
                    "text": post["message"],
                    "thread": post.get("root_id") or None,
                    "edited": bool(post.get("edit_at")),
                    "from_hookhub": props.get("from_hookhub") == "true",
                }
            )
        return shown

    def _discord_messages(self, channel: str) -> list[dict[str, Any]]:
        self._discord_channel(channel)
        return [_discord_message(m) for m in self.discord.messages(channel)]

    async def _telegram_writes(
        self, channel: str, user: str, text: str, thread: str
    ) -> dict[str, Any]:
        chat = self._telegram_chat(channel)
        person = _telegram_person(user)
        reply_to = _telegram_id(thread) if thread else None
        if reply_to is not None and reply_to not in chat.messages:
            raise SandboxError(404, "not_found", f"no message {thread} in {channel}")
        message_id = chat.next_message_id  # what user_sends stores it as, before any wait
        status = await self.telegram.user_sends(
            chat.id, person, text, reply_to, token=self.creds["telegram_bot_token"]
        )
        return {"id": str(message_id), "delivered": status or None}

    async def _telegram_edits(self, channel: str, message: str, text: str) -> dict[str, Any]:
        chat = self._telegram_chat(channel)
        status = await self.telegram.user_edits(
            chat.id, _telegram_id(message), text, token=self.creds["telegram_bot_token"]
        )
        return {"id": message, "delivered": status or None}

    def _telegram_buttons(self, channel: str, message: str) -> list[dict[str, str]]:
        chat = self._telegram_chat(channel)
        return _prefixed(
            (b.get("callback_data", ""), b.get("text", ""))
            for b in self.telegram.buttons(chat.id, _telegram_id(message))
        )

    async def _telegram_clicks(
        self, channel: str, message: str, action: str, user: str
    ) -> dict[str, Any]:
        chat = self._telegram_chat(channel)
        person = _telegram_person(user)
        status, _ = await self.telegram.press(
            chat.id,
            _telegram_id(message),
            BUTTON + action,
            person,
            token=self.creds["telegram_bot_token"],
        )
        return {"delivered": status or None}

    def _telegram_messages(self, channel: str) -> list[dict[str, Any]]:
        chat = self._telegram_chat(channel)
        return [_telegram_message(chat.messages[k]) for k in sorted(chat.messages)]

    async def _teams_writes(
        self, channel: str, user: str, text: str, thread: str
    ) -> dict[str, Any]:
        teams = self.teams
        if channel not in teams.channels:
            raise SandboxError(404, "not_found", f"no Teams channel {channel}")
        names = {k: (u["id"], u["name"]) for k, u in TEAMS_USERS.items()}
        person = _find_user(user, names)
        if thread and teams.message(channel, thread) is None:
            raise SandboxError(404, "not_found", f"no message {thread} in {channel}")
        return await self._teams_tells(
            lambda: teams.user_sends(self.teams_bot, channel, person, text, root=thread or None)
        )

    async def _teams_edits(self, channel: str, message: str, text: str) -> dict[str, Any]:
        return await self._teams_tells(
            lambda: self.teams.user_edits(self.teams_bot, channel, message, text)
        )

    async def _teams_deletes(self, channel: str, message: str) -> dict[str, Any]:
        return await self._teams_tells(
            lambda: self.teams.user_deletes(self.teams_bot, channel, message)
        )

    def _teams_buttons(self, channel: str, message: str) -> list[dict[str, str]]:
        return [
            {"action": a["verb"], "label": a.get("title", a["verb"])}
            for a in self.teams.buttons(channel, message)
        ]

    async def _teams_clicks(
        self, channel: str, message: str, action: str, user: str
    ) -> dict[str, Any]:
        names = {k: (u["id"], u["name"]) for k, u in TEAMS_USERS.items()}
        person = _find_user(user, names)

        async def clicks() -> tuple[dict[str, Any], int]:
            status, _ = await self.teams.click(self.teams_bot, channel, message, action, person)
            return {"id": message}, status

        told = await self._teams_tells(clicks)
        return {"delivered": told["delivered"]}

    async def _teams_tells(
        self, tells: Callable[[], Awaitable[tuple[dict[str, Any], int]]]
    ) -> dict[str, Any]:
        """Teams POSTs an activity (`tells` makes and delivers it) to the bot's messaging
        endpoint, found at the first (the teams integration's webhook URL): the message's id
        and hookhub's status."""
        if not self.teams_bot.endpoint:
            self.teams_bot.endpoint = await self._webhook_url("teams")
        if not self.teams_bot.endpoint:
            raise SandboxError(
                409,
                "no_messaging_endpoint",
                "the sandbox bot has no messaging endpoint: create a teams integration first",
            )
        try:
            activity, status = await tells()
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the messaging endpoint did not answer: {exc!r}"
            ) from None
        return {"id": activity["id"], "delivered": status}

    def _teams_messages(self, channel: str) -> list[dict[str, Any]]:
        found = self.teams.channels.get(channel)
        if found is None:
            raise SandboxError(404, "not_found", f"no Teams channel {channel}")
        shown = []
        for message in found.messages.values():
            sender = message.get("from") or {}
            shown.append(
                {
                    "id": message["id"],
                    "user": {"id": sender.get("id"), "name": sender.get("name") or ""},
                    "text": _teams_text(message.get("text") or ""),
                    "thread": message.get("replyToId"),
                    "edited": message["id"] in found.edited,
                    "from_hookhub": str(sender.get("id", "")).startswith("28:"),
                }
            )
        return shown

    async def _googlechat_writes(
        self, channel: str, user: str, text: str, thread: str
    ) -> dict[str, Any]:
        chat = self.googlechat
        space = chat.spaces.get(channel)
        if space is None:
            raise SandboxError(404, "not_found", f"no Google Chat space {channel}")
        person = self._googlechat_user(user)
        thread_name = None
        if thread:
            root = space.find(thread)
            if root is None:
                raise SandboxError(404, "not_found", f"no message {thread} in {channel}")
            thread_name = root["thread"]["name"]
        await self._googlechat_endpoint()
        event = chat.message_event(channel, person, text, thread=thread_name)
        try:
            answer = await chat.deliver(event)
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the app's endpoint did not answer: {exc!r}"
            ) from None
        return {"id": event["message"]["name"], "delivered": answer.status_code}

    def _googlechat_buttons(self, channel: str, message: str) -> list[dict[str, str]]:
        shown = []
        for button in self.googlechat.buttons(channel, message):
            parameters = ((button.get("onClick") or {}).get("action") or {}).get("parameters")
            given = {p.get("key"): p.get("value") for p in parameters or []}
            shown.append({"action": given.get(GOOGLECHAT_ACTION, ""), "label": button["text"]})
        return shown

    async def _googlechat_clicks(
        self, channel: str, message: str, action: str, user: str
    ) -> dict[str, Any]:
        """Its CARD_CLICKED event, signed by the stand-in's key, to the app's endpoint."""
        person = self._googlechat_user(user)
        label = _label(self._googlechat_buttons(channel, message), action)
        await self._googlechat_endpoint()
        try:
            answer = await self.googlechat.click(channel, message, label, person)
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the app's endpoint did not answer: {exc!r}"
            ) from None
        return {"delivered": answer.status_code}

    def _googlechat_user(self, user: str) -> str:
        """The key of the space's user named `user` (their `users/{id}`, name or first name)."""
        names = {u["name"]: (u["displayName"], k) for k, u in self.googlechat.users.items()}
        return names[_find_user(user, names)][1]

    async def _googlechat_endpoint(self) -> None:
        """The Chat app's HTTP endpoint URL: the googlechat integration's (409 for none)."""
        chat = self.googlechat
        if not chat.endpoint_url:
            chat.endpoint_url = await self._webhook_url("googlechat") or ""
        if not chat.endpoint_url:
            raise SandboxError(
                409,
                "no_endpoint_url",
                "the sandbox Chat app has no HTTP endpoint URL: create a googlechat "
                "integration, or PUT its webhook_url to "
                f'{self.direct}/googlechat/app {{"endpoint_url": "…"}}',
            )

    async def _matrix_writes(
        self, channel: str, user: str, text: str, thread: str
    ) -> dict[str, Any]:
        """A person of the homeserver sends in a room; the homeserver pushes the transaction
        (with whatever else was queued: hookhub's own posts among them) to the appservice."""
        matrix = self.matrix
        room = matrix.rooms.get(channel)
        if room is None:
            raise SandboxError(404, "not_found", f"no Matrix room {channel}")
        names = {matrix.user_id(p): (p.title(), p) for p in MATRIX_PEOPLE}
        person = names[_find_user(user, names)][1]
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if thread:
            if not any(e["event_id"] == thread for e in room.timeline):
                raise SandboxError(404, "not_found", f"no event {thread} in {channel}")
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": thread},
            }
        event, status = await self._matrix_pushes(lambda: matrix.says(person, content, room))
        return {"id": event["event_id"], "delivered": status}

    async def _matrix_commands(self, channel: str, user: str, text: str) -> dict[str, Any]:
        """A message that opens with `!hookhub` (Matrix has no slash commands for bots)."""
        return await self._matrix_writes(channel, user, f"!hookhub {text}".strip(), "")

    async def _matrix_edits(self, channel: str, event_id: str, text: str) -> dict[str, Any]:
        room, person = self.matrix.rooms[channel], self._matrix_author(event_id)
        _, status = await self._matrix_pushes(
            lambda: self.matrix.edits(person, event_id, text, room)
        )
        return {"id": event_id, "delivered": status}

    async def _matrix_deletes(self, channel: str, event_id: str) -> dict[str, Any]:
        room, person = self.matrix.rooms[channel], self._matrix_author(event_id)
        _, status = await self._matrix_pushes(lambda: self.matrix.redacts(person, event_id, room))
        return {"id": event_id, "delivered": status}

    def _matrix_author(self, event_id: str) -> str:
        """The localpart of the person who sent `event_id` (`@alice:…`: alice)."""
        return str(self.matrix.event(event_id)["sender"]).removeprefix("@").split(":")[0]

    async def _matrix_pushes(
        self, says: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], int]:
        """A person's event (`says` queues it), then the transaction the homeserver pushes
        to the appservice, whose url is found at the first (the matrix integration's
        webhook URL): the event and the appservice's status."""
        matrix = self.matrix
        assert matrix.appservice is not None
        if not matrix.appservice.url:
            matrix.appservice.url = await self._webhook_url("matrix") or ""
        if not matrix.appservice.url:
            raise SandboxError(
                409,
                "no_appservice_url",
                "the sandbox homeserver has no appservice URL: "
                "create a matrix integration (its webhook_url is the appservice's url)",
            )
        event = says()
        try:
            status = await matrix.push()
        except httpx.HTTPError as exc:
            raise SandboxError(
                502, "not_delivered", f"the appservice did not answer: {exc!r}"
            ) from None
        return event, status

    def _matrix_messages(self, channel: str) -> list[dict[str, Any]]:
        room = self.matrix.rooms.get(channel)
        if room is None:
            raise SandboxError(404, "not_found", f"no Matrix room {channel}")
        return self.matrix.shown(room)

    def _googlechat_messages(self, channel: str) -> list[dict[str, Any]]:
        space = self.googlechat.spaces.get(channel)
        if space is None:
            raise SandboxError(404, "not_found", f"no Google Chat space {channel}")
        items = sorted(space.messages.values(), key=lambda m: m["createTime"])
        return [_googlechat_message(m, space.messages) for m in items]

    async def _webhook_url(self, provider: str) -> str | None:
        """The webhook URL of hookhub's first integration of `provider` (by the admin API)."""
        found = await self._webhook_urls(provider, first=True)
        return found[0] if found else None

    async def _webhook_urls(self, provider: str, *, first: bool = False) -> list[str]:
        """The webhook URLs of hookhub's integrations of `provider`, read page by page
        through the admin API (`first`: the first page's first only); none without it."""
        if not self.admin_token:
            return []
        urls: list[str] = []
        cursor: str | None = None
        async with httpx.AsyncClient(verify=tls(), timeout=5.0) as client:
            for _ in range(20):
                params = {
                    "provider": provider,
                    "limit": "1" if first else "100",
                    **({"cursor": cursor} if cursor else {}),
                }
                answer = await client.get(
                    self.origin + "/api/integrations",
                    params=params,
                    headers={"Authorization": f"Bearer {self.admin_token}"},
                )
                if answer.status_code != 200:
                    return []  # all or none: a registration of half is no one's
                page = answer.json()
                urls += [i["webhook_url"] for i in page["data"] if i.get("webhook_url")]
                cursor = page.get("next_cursor")
                if first or not cursor:
                    return urls
        return urls

    def _telegram_sample(self) -> tuple[bytes, str, str]:
        return self.telegram_export, "application/json", "result.json"

    async def event(self, provider: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """GitHub or Jira sends the webhook `event` to every integration registered with it,
        hookhub's integrations of that provider among them (registered here on the way)."""
        event = _text(body, "event", required=True)
        params = {k: v for k, v in body.items() if k != "event"}
        await self.register_hookhub(provider)
        standin = self.github if provider == "github" else self.jira
        try:
            deliveries = await standin.send(event, **params)
        except EventRefused as refused:
            raise SandboxError(422, "invalid", str(refused)) from None
        return {"event": event, "deliveries": [d.summary() for d in deliveries]}

    async def register_hookhub(self, provider: str) -> None:
        """Every integration hookhub has for `provider` as a webhook of the stand-in, with
        the sandbox's webhook secret: what a user does in GitHub's or Jira's settings."""
        secret = self.creds[f"{provider}_webhook_secret"]
        urls = await self._webhook_urls(provider)
        if provider == "github":
            for repo in self.github.world.repositories.values():
                known = {
                    h.url for h in self.github.hooks.values() if h.repository == repo.full_name
                }
                for url in urls:
                    if url not in known:
                        owner, name = repo.full_name.split("/")
                        self.github.add_hook(owner, name, url, secret)
        else:
            known = {h.url for h in self.jira.hooks.values()}
            for url in urls:
                if url not in known:
                    self.jira.add_hook(url, secret)

    def export(self, provider: str) -> tuple[bytes, str, str]:
        """The network's sample export: (its bytes, media type, file name)."""
        export = self.chats[provider].export
        assert export is not None  # the routes take only the networks with one
        return export[1]()

    def _slack_channel(self, channel: str) -> Any:
        found = self.slack.channels.get(channel)
        if found is None:
            raise SandboxError(404, "not_found", f"no Slack channel {channel}")
        return found

    def _discord_channel(self, channel: str) -> None:
        if channel not in self.discord.channels:
            raise SandboxError(404, "not_found", f"no Discord channel {channel}")

    def _telegram_chat(self, channel: str) -> Any:
        chat = self.telegram.chats.get(_telegram_id(channel))
        if chat is None:
            raise SandboxError(404, "not_found", f"no Telegram chat {channel}")
        return chat

    # -- HTTP -----------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def page(_: Request) -> Response:
            return FileResponse(
                STATIC / "index.html",
                media_type="text/html; charset=utf-8",
                headers=SECURITY_HEADERS,
            )

        async def bare(_: Request) -> Response:
            return RedirectResponse("/sandbox/", 308)

        async def state(_: Request) -> Response:
            return _json(self.state())

        async def write(request: Request) -> Response:
            provider = _provider(request, tuple(self.chats))
            return _json(await self.write(provider, await _body(request)), 201)

        async def edit(request: Request) -> Response:
            provider = _provider(request, tuple(self.chats))
            message = request.path_params["message"]
            return _json(await self.edit(provider, message, await _body(request)))

        async def delete(request: Request) -> Response:
            provider = _provider(request, tuple(self.chats))
            message = request.path_params["message"]
            return _json(await self.delete(provider, message, await _body(request)))

        async def command(request: Request) -> Response:
            provider = _provider(request, tuple(self.chats))
            return _json(await self.command(provider, await _body(request)), 201)

        async def messages(request: Request) -> Response:
            provider = _provider(request, tuple(self.chats))
            items = self.messages(provider, request.path_params["channel"])
            return _json({"items": items})

        async def event(request: Request) -> Response:
            provider = _provider(request, EVENT_PROVIDERS)
            return _json(await self.event(provider, await _body(request)), 201)

        async def catalog(_: Request) -> Response:
            return _json({"items": self.catalog.listing()})

        async def catalog_send(request: Request) -> Response:
            provider = request.path_params["provider"]
            return _json(await self.catalog.send(provider, await _body(request)), 201)

        async def export(request: Request) -> Response:
            exporting = tuple(name for name, chat in self.chats.items() if chat.export)
            content, media_type, name = self.export(_provider(request, exporting))
            return Response(
                content,
                media_type=media_type,
                headers={
                    "Content-Disposition": f'attachment; filename="{name}"',
                    "Cache-Control": "no-store",
                },
            )

        async def doc(request: Request) -> Response:
            name = request.path_params["name"]
            if name not in LINKED_DOCS or not (DOCS / name).is_file():
                raise SandboxError(404, "not_found", f"no doc {name} here: see hookhub's docs/")
            return FileResponse(
                DOCS / name,
                media_type="text/plain; charset=utf-8",
                headers=SECURITY_HEADERS,
            )

        async def interact(request: Request) -> Response:
            return _json(await self.interact(await _body(request)), 201)

        async def click(request: Request) -> Response:
            provider = _provider(request, tuple(self.chats))
            return _json(await self.click(provider, await _body(request)), 201)

        async def private(request: Request) -> Response:
            provider = _provider(request, tuple(self.chats))
            told = self.chats[provider].private
            return _json({"items": told() if told is not None else []})

        async def chat_messages(request: Request) -> Response:
            return _json({"items": self.chat.messages(request.path_params["channel"])})

        async def chat_click(request: Request) -> Response:
            return _json(await self.chat.click(await _body(request)), 201)

        async def chat_write(request: Request) -> Response:
            return _json(await self.chat.write(await _body(request)), 201)

        async def chat_change(request: Request) -> Response:
            message, action = request.path_params["message"], request.path_params["action"]
            changes = {"edit": self.chat.edit, "delete": self.chat.delete}
            changes["pass_on"] = self.chat.pass_on
            if action not in changes:
                raise SandboxError(404, "not_found", f"no sandbox route {request.url.path}")
            return _json(await changes[action](message, await _body(request)))

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self.chat.start()
            try:
                yield
            finally:
                await self.chat.stop()

        async def healthz(_: Request) -> Response:
            return JSONResponse({"status": "ok", "service": "sandbox"})

        async def readyz(_: Request) -> Response:
            return JSONResponse({"status": "ready", "service": "sandbox"})

        routes: list[BaseRoute] = [
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/sandbox", bare),
            Route("/sandbox/", page, methods=["GET", "HEAD"]),
            Mount("/sandbox/static", app=SecurityHeaders(StaticFiles(directory=STATIC))),
            Route("/sandbox/docs/{name}", _guarded(doc), methods=["GET", "HEAD"]),
            Route("/sandbox/api/state", _guarded(state)),
            Route("/sandbox/api/webhooks", _guarded(catalog)),
            Route("/sandbox/api/webhooks/{provider}", _guarded(catalog_send), methods=["POST"]),
            # The chat product's part (services/sandbox/chat.py).
            Route("/sandbox/api/chat/channels/{channel:path}/messages", _guarded(chat_messages)),
            Route("/sandbox/api/chat/click", _guarded(chat_click), methods=["POST"]),
            Route("/sandbox/api/chat/messages", _guarded(chat_write), methods=["POST"]),
            Route(
                "/sandbox/api/chat/messages/{message}/{action}",
                _guarded(chat_change),
                methods=["POST"],
            ),
            Route("/sandbox/api/{provider}/messages", _guarded(write), methods=["POST"]),
            Route("/sandbox/api/{provider}/click", _guarded(click), methods=["POST"]),
            Route("/sandbox/api/{provider}/commands", _guarded(command), methods=["POST"]),
            Route("/sandbox/api/{provider}/private", _guarded(private)),
            # `path`: a Google Chat message is `spaces/…/messages/…`.
            Route(
                "/sandbox/api/{provider}/messages/{message:path}/edit",
                _guarded(edit),
                methods=["POST"],
            ),
            Route(
                "/sandbox/api/{provider}/messages/{message:path}/delete",
                _guarded(delete),
                methods=["POST"],
            ),
            # `path`: a Google Chat space is `spaces/…`.
            Route("/sandbox/api/{provider}/channels/{channel:path}/messages", _guarded(messages)),
            Route("/sandbox/api/discord/interactions", _guarded(interact), methods=["POST"]),
            Route("/sandbox/api/{provider}/events", _guarded(event), methods=["POST"]),
            Route("/sandbox/api/exports/{provider}", _guarded(export)),
            Route("/sandbox/api/{rest:path}", _guarded(_unknown), methods=["GET", "POST"]),
            *(Mount(f"/sandbox/{name}", app=standin.app()) for name, standin in self.oauth.items()),
            Mount("/sandbox/telegram", app=self.telegram.app()),
            Mount("/sandbox/mattermost", app=self.mattermost.app()),
            Mount("/sandbox/googlechat", app=self.googlechat.app()),
            Mount("/sandbox/teams", app=self.teams.app()),
            Mount("/sandbox/matrix", app=self.matrix.app()),
            *(Mount(f"/sandbox/{name}", app=app) for name, app in self.acted.mounts()),
        ]
        return Starlette(routes=routes, lifespan=lifespan)


def _guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except (SandboxError, SendRefused, ChatRefused) as error:
            return _error(error.status, error.code, error.message)

    return run


async def _unknown(request: Request) -> Response:
    raise SandboxError(404, "not_found", f"no sandbox route {request.url.path}")


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


def _provider(request: Request, allowed: tuple[str, ...]) -> str:
    provider = str(request.path_params["provider"])
    if provider not in allowed:
        raise SandboxError(404, "not_found", f"{provider!r} is not one of {', '.join(allowed)}")
    return provider


async def _body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise SandboxError(
            415, "unsupported_media_type", "send JSON (content-type: application/json)"
        )
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise SandboxError(413, "too_large", f"the body is over {MAX_BODY} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SandboxError(400, "malformed", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise SandboxError(422, "invalid", "the body must be a JSON object")
    return body


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise SandboxError(422, "invalid", f"{name} is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SandboxError(422, "invalid", f"{name} must be a string")
    return str(value)


def _written(body: Mapping[str, Any]) -> str:
    """The body's `text`, required, at most MAX_TEXT characters."""
    text = _text(body, "text", required=True)
    if len(text) > MAX_TEXT:
        raise SandboxError(422, "invalid", f"text is longer than {MAX_TEXT} characters")
    return text


def _mattermost_user(user: str) -> str:
    """The id of the Mattermost user named `user` (id, username or full name)."""
    return _find_user(user, MATTERMOST_PEOPLE)


def _label(buttons: list[dict[str, str]], action: str) -> str:
    """The label of the button with this action (the stand-ins click a button by its label)."""
    return next(b["label"] for b in buttons if b["action"] == action)


def _find_user(user: str, names: Mapping[str, tuple[str, ...]]) -> str:
    """A user by id, or by one of the names the state lists them by (or their handle)."""
    if user in names:
        return user
    for user_id, aliases in names.items():
        if user in aliases:
            return user_id
    raise SandboxError(404, "not_found", f"no user {user!r}; the state lists them")


# What the networks whose buttons carry a string put before hookhub's action id (Discord's
# `custom_id`, Telegram's `callback_data`: docs/sync.md, "Cards' buttons").
BUTTON = "hh:"


def _prefixed(buttons: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """hookhub's buttons of those (`(carried, label)`): their action ids and labels."""
    return [
        {"action": carried.removeprefix(BUTTON), "label": label}
        for carried, label in buttons
        if carried.startswith(BUTTON)
    ]


def _teams_text(text: str) -> str:
    """A Teams message's text (HTML: hookhub posts `<b>name</b><br>` and escapes the rest)
    as the reader sees it: lines, no tags, entities decoded (the page shows it as text)."""
    text = re.sub(r"<br\s*/?>", "\n", text, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]*>", "", text))


# A network's link markup (Slack's and Google Chat's `<url|label>`), and its bold around a
# run of text (Discord's `**…**`, Google Chat's `*…*`: hookhub's author line where the bot
# posts itself).
_LINK = re.compile(r"<(https?://[^|>\s]+)\|([^>]*)>")
_DOUBLE_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_SINGLE_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ESCAPED = re.compile(r"\\([\\`*_~|>#\-\[\]()])")


def _as_read(text: str, network: str) -> str:
    """A message's text (the network's markup) as its reader sees it, for the page, which
    shows text: links as `label (url)`, bold as its words, escapes and entities decoded."""
    if network in ("slack", "googlechat"):
        text = _LINK.sub(lambda m: f"{m[2]} ({m[1]})" if m[2] else m[1], text)
    if network == "slack":
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if network == "googlechat":
        return _SINGLE_BOLD.sub(r"\1", text)
    return _ESCAPED.sub(r"\1", _DOUBLE_BOLD.sub(r"\1", text))  # Discord's Markdown


def _telegram_person(user: str) -> dict[str, Any]:
    """A seeded Telegram user (by id or name) as the Bot API's `User`."""
    names = {str(k): (f"{v[1]} {v[2]}", v[0]) for k, v in TELEGRAM_USERS.items()}
    telegram_user = int(_find_user(user, names))
    handle, first, last = TELEGRAM_USERS[telegram_user]
    return {"id": telegram_user, "first_name": first, "last_name": last, "username": handle}


def _telegram_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SandboxError(404, "not_found", f"{value!r} is not a Telegram id") from None


def _webhook_of(telegram: FakeTelegram, token: str) -> str | None:
    hook = telegram.webhooks.get(token)
    return str(hook["url"]) if hook else None


def _slack_message(message: Mapping[str, Any], users: Mapping[str, Any]) -> dict[str, Any]:
    user = users.get(str(message.get("user", "")))
    from_hookhub = message.get("bot_id") == BOT_ID
    name = message.get("username") or (user["real_name"] if user else message.get("user"))
    return {
        "id": message["ts"],
        "user": {"id": message.get("user") or message.get("bot_id"), "name": name},
        "text": _as_read(message.get("text", ""), "slack"),
        "thread": message.get("thread_ts") if message.get("thread_ts") != message["ts"] else None,
        "edited": "edited" in message,
        "from_hookhub": from_hookhub,
    }


def _discord_message(message: Mapping[str, Any]) -> dict[str, Any]:
    author = message.get("author") or {}
    reference = message.get("message_reference") or {}
    return {
        "id": message["id"],
        "user": {
            "id": author.get("id"),
            "name": author.get("global_name") or author.get("username"),
        },
        "text": _as_read(message.get("content", ""), "discord"),
        "thread": reference.get("message_id"),
        "edited": message.get("edited_timestamp") is not None,
        "from_hookhub": bool(author.get("bot") or message.get("webhook_id")),
    }


def _telegram_message(message: Mapping[str, Any]) -> dict[str, Any]:
    sender = message.get("from") or {}
    name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p)
    reply = message.get("reply_to_message") or {}
    return {
        "id": str(message["message_id"]),
        "user": {"id": str(sender.get("id", "")), "name": name or sender.get("username")},
        "text": message.get("text", ""),
        "thread": str(reply["message_id"]) if reply else None,
        "edited": "edit_date" in message,
        "from_hookhub": bool(sender.get("is_bot")),
    }


def _googlechat_message(
    message: Mapping[str, Any], others: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A space's message as the page shows it: a reply's thread is its thread's first
    message."""
    sender = message.get("sender") or {}
    thread = None
    if message.get("threadReply"):
        name = message["thread"]["name"]
        thread = next(
            (
                k
                for k, m in others.items()
                if m["thread"]["name"] == name and not m.get("threadReply")
            ),
            None,
        )
    return {
        "id": message["name"],
        "user": {"id": sender.get("name", ""), "name": sender.get("displayName")},
        "text": _as_read(message.get("text", ""), "googlechat"),
        "thread": thread,
        "edited": "lastUpdateTime" in message,
        "from_hookhub": sender.get("type") == "BOT",
    }
