"""Integration logic: settings checks, encryption of secrets, the Telegram bot handshake and
the Slack and Discord bot token checks, one integration per bot (409 `bot_in_use`),
disconnecting (revocation at the provider, tokens forgotten,
`integration.disconnected`)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.oauth.integrations.schemas import IntegrationCreate, IntegrationUpdate, Revocation
from services.oauth.revocations.service import Revoker
from shared.domain import tenancy
from shared.domain.integrations.model import (
    BOT_PROVIDERS,
    IntegrationSnapshot,
    Provider,
    Status,
    bot_key,
    integration_event,
    new_integration,
)
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.operational import publish_integration_event
from shared.kernel.crypto import SecretBox
from shared.kernel.errors import Conflict, Invalid, NotFound
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.providers.catalog import (
    NETWORKS,
    WEBHOOK_PROVIDERS,
    catalog_entry,
    check_settings,
    defaults,
    split_settings,
)
from shared.providers.chat import ChatProvider, PermanentError, RateLimited
from shared.providers.declared import Declared
from shared.providers.discord.api import DiscordApi
from shared.providers.slack.api import SlackApi
from shared.providers.telegram.api import TelegramApi


def webhook_url(public_url: str, provider: str, integration_id: str) -> str | None:
    """Where the provider sends this integration's webhooks (None: it sends none)."""
    if provider not in WEBHOOK_PROVIDERS:
        return None
    return f"{public_url.rstrip('/')}/api/webhooks/{provider}/{integration_id}"


class IntegrationService:
    def __init__(
        self,
        repository: IntegrationRepository,
        box: SecretBox,
        telegram: TelegramApi,
        public_url: str,
        revoker: Revoker,
        publisher: EventPublisher,
        *,
        slack: SlackApi,
        discord: DiscordApi,
        chats: Mapping[str, ChatProvider],
    ) -> None:
        self._repository = repository
        self._box = box
        self._telegram = telegram
        self._public_url = public_url
        self._revoker = revoker
        self._publisher = publisher
        self._slack = slack
        self._discord = discord
        self._chats = chats

    def _seal(self, values: dict[str, str]) -> dict[str, str]:
        return {name: self._box.encrypt(value) for name, value in values.items()}

    async def create(self, body: IntegrationCreate) -> Document:
        tenancy.may_create_in(body.workspace_id)  # before the provider is called
        values = {
            **defaults(body.provider),
            **check_settings(body.provider, body.settings, creating=True),
        }
        doc = new_integration(
            body.provider,
            body.workspace_id,
            name=body.name,
            enabled=body.enabled,
            is_default=body.is_default,
            rate_limit_per_second=body.rate_limit_per_second,
        )
        integration_id = doc["_id"]
        if body.provider == Provider.TELEGRAM:
            values.setdefault("secret_token", secrets.token_urlsafe(32))
            doc["account"] = await self._telegram_bot(values["bot_token"])
        elif body.provider == Provider.SLACK and "bot_token" in values:
            doc["account"] = await self._connect_slack(values["bot_token"])
        elif body.provider == Provider.DISCORD and "bot_token" in values:
            doc["account"] = await self._connect_discord(values["bot_token"])
        elif body.provider == Provider.GOOGLE:
            doc["status"] = Status.PENDING.value  # OAuth only: connected by the callback
        hidden, doc["config"] = split_settings(body.provider, values)
        account = await self._network_account(body.provider, body.workspace_id, values)
        if account is not None:
            doc["account"] = account
        doc["secrets"] = self._seal(hidden)
        key = await self._bot_free(body.provider, doc["account"], body.workspace_id)
        if key is not None:
            doc["bot_key"] = key
        try:
            await self._repository.insert(doc)
        except DuplicateKeyError as exc:  # another create of the same bot won the race
            raise self._bot_taken(body.provider, doc["account"], None) from exc
        if body.provider == Provider.TELEGRAM:
            # Only once the bot is this integration's: setWebhook is what takes its updates.
            try:
                await self._point_webhook(integration_id, values)
            except BaseException:
                await self._repository.soft_delete(integration_id, bot_key=None, secrets={})
                raise
        if body.is_default:
            await self._repository.clear_default(
                doc["provider"], body.workspace_id, keep=integration_id
            )
        return doc

    async def _bot_free(
        self,
        provider: str,
        account: dict[str, Any] | None,
        workspace_id: str,
        besides: str | None = None,
    ) -> str | None:
        """The `bot_key` this integration is to hold, once no other holds the bot (409
        otherwise); None for an integration without a bot of its own."""
        if provider not in BOT_PROVIDERS or not account or not account.get("id"):
            return None
        key = bot_key(provider, str(account["id"]))
        holder = await self._repository.bot_holder(
            key, str(provider), str(account["id"]), besides=besides
        )
        if holder is not None:
            same = holder["workspace_id"] == workspace_id
            raise self._bot_taken(provider, account, str(holder["_id"]) if same else None)
        return key

    @staticmethod
    def _bot_taken(
        provider: str, account: dict[str, Any] | None, same_workspace: str | None
    ) -> Conflict:
        """409 naming the bot and why, and the other integration only when it is in the
        same workspace: another workspace is never named."""
        account = account or {}
        name = account.get("name")
        bot = f"{'@' + name if name else 'bot'} (id {account.get('id')})"
        where = (
            f"integration {same_workspace} of this workspace"
            if same_workspace
            else "another hookhub integration"
        )
        title = "Telegram" if provider == Provider.TELEGRAM else "Discord"
        # Telegram sends a bot's updates to one webhook; a Discord bot's Gateway carries
        # every server it is in: a second integration would take them or get them twice.
        fix = (
            "make another bot with @BotFather"
            if provider == Provider.TELEGRAM
            else "make another application with a bot in the Developer Portal"
        )
        return Conflict(
            f"the {title} bot {bot} is already connected to {where}: one bot is one "
            f"integration. Map more channels on that integration, delete it to free the "
            f"bot, or {fix}",
            code="bot_in_use",
        )

    async def _network_account(
        self, provider: str, workspace_id: str, values: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """For a network that builds its credential from the settings (`Network.credential`:
        Mattermost, Matrix, Teams, Google Chat), who the settings make us there, asked of it
        (`ChatProvider.identity`): settings it refuses are a 422 naming why, not an
        integration that fails at its first message. None for any other provider."""
        network, chat = NETWORKS.get(provider), self._chats.get(provider)
        if network is None or chat is None:
            return None
        hidden, shown = split_settings(provider, dict(values))
        credential = network.credential(
            IntegrationSnapshot(
                id="",
                workspace_id=workspace_id,
                provider=provider,
                enabled=True,
                is_default=False,
                status=Status.CONNECTED.value,
                account_id=None,
                rate_limit_per_second=None,
                secrets=hidden,
                config=shown,
            )
        )
        if credential is None:
            return None
        try:
            me = await chat.identity(credential)
        except PermanentError as exc:
            raise Invalid(
                f"{catalog_entry(provider).name} refused these settings ({exc.error}): "
                f"{exc.message}",
                code="invalid_setting",
            ) from exc
        return {"id": me.user_id or me.bot_id or me.app_id, "name": me.name}

    async def _telegram_bot(self, bot_token: str) -> dict[str, Any]:
        """The account of a bot token, checked with getMe."""
        bot = await self._telegram.get_me(bot_token)
        return {"id": str(bot.id), "name": bot.username}

    async def _point_webhook(self, integration_id: str, values: dict[str, str]) -> None:
        """Point the bot's webhook at our URL and secret (this takes the bot's updates)."""
        url = webhook_url(self._public_url, Provider.TELEGRAM, integration_id)
        assert url is not None
        await self._telegram.set_webhook(values["bot_token"], url, values["secret_token"])

    async def _connect_slack(self, bot_token: str) -> dict[str, Any]:
        """Check a hand-installed app's bot token with auth.test; the account it names."""
        try:
            me = await self._slack.auth_test(bot_token)
        except PermanentError as exc:
            raise Invalid(
                f"Slack refused settings.bot_token ({exc.error}): give the Bot User OAuth "
                "Token of an app installed to the workspace",
                code="invalid_setting",
            ) from exc
        bot_id, app_id = me.get("bot_id"), me.get("app_id")
        if not me.get("team_id") or not bot_id:
            raise Invalid(
                "settings.bot_token is not a bot's token (auth.test named no bot)",
                code="invalid_setting",
            )
        if not app_id:
            # auth.test does not promise the app id for a bot token; bots.info has it. A
            # token without users:read lacks it: the bot id still recognises our posts.
            with contextlib.suppress(PermanentError):
                app_id = (await self._slack.bots_info(bot_token, str(bot_id))).get("app_id")
        return {
            "id": str(me["team_id"]),
            "name": me.get("team"),
            "url": me.get("url"),
            "bot_user_id": me.get("user_id"),
            "bot_id": bot_id,
            "app_id": app_id,
        }

    async def _connect_discord(self, bot_token: str) -> dict[str, Any]:
        """Check a bot token with `GET /users/@me` (a bot's) and the application it belongs
        to: the account is the bot user, whatever servers it was invited to."""
        try:
            me = await self._discord.me(bot_token)
            app = await self._discord.application(bot_token)
        except (PermanentError, RateLimited) as exc:
            raise Invalid(
                f"Discord refused settings.bot_token ({getattr(exc, 'error', exc.code)}): "
                "give the bot's token (Developer Portal → your application → Bot → Reset "
                "Token)",
                code="invalid_setting",
            ) from exc
        if not me.get("bot") or not me.get("id"):
            raise Invalid(
                "settings.bot_token is not a bot's token (/users/@me names no bot)",
                code="invalid_setting",
            )
        return {
            "id": str(me["id"]),
            "name": me.get("username"),
            "bot_user_id": str(me["id"]),
            "application_id": str(app["id"]) if app.get("id") else None,
        }

    async def update(self, integration_id: str, body: IntegrationUpdate) -> Document:
        current = await self._repository.get(integration_id)
        if current is None:
            raise NotFound(f"integration {integration_id} not found")
        fields: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"settings"})
        unset: dict[str, Any] = {}
        if body.settings is not None:
            provider = str(current["provider"])
            cleared = [name for name, value in body.settings.items() if value is None]
            unset = self._cleared(provider, cleared)
            given = {n: v for n, v in body.settings.items() if v is not None}
            values = check_settings(provider, given, creating=False)
            if provider == Provider.TELEGRAM and values:
                merged = {
                    **{k: self._box.decrypt(v) for k, v in current["secrets"].items()},
                    **values,
                }
                if "bot_token" not in merged:
                    raise Invalid(
                        "this integration was disconnected: give settings.bot_token to "
                        "connect it again",
                        code="missing_setting",
                    )
                fields["account"] = await self._telegram_bot(merged["bot_token"])
                await self._claim_bot(current, fields["account"])
                try:
                    await self._point_webhook(integration_id, merged)
                except BaseException:
                    await self._repository.update(
                        integration_id, {"bot_key": current.get("bot_key")}
                    )
                    raise
                fields["status"] = Status.CONNECTED.value  # a new bot token reconnects
            if provider == Provider.SLACK and "bot_token" in values:
                fields["account"] = await self._connect_slack(values["bot_token"])
                fields["status"] = Status.CONNECTED.value
                fields["last_error"] = None
            if provider == Provider.DISCORD and "bot_token" in values:
                fields["account"] = await self._connect_discord(values["bot_token"])
                await self._claim_bot(current, fields["account"])
                fields["status"] = Status.CONNECTED.value
                fields["last_error"] = None
            if values:
                merged = {
                    **current.get("config", {}),
                    **{k: self._box.decrypt(v) for k, v in current["secrets"].items()},
                    **values,
                }
                account = await self._network_account(provider, current["workspace_id"], merged)
                if account is not None:
                    fields["account"] = account
                    fields["status"] = Status.CONNECTED.value  # new credentials reconnect
                    fields["last_error"] = None
            hidden, shown = split_settings(provider, values)
            for name, sealed in self._seal(hidden).items():
                fields[f"secrets.{name}"] = sealed
            for name, value in shown.items():
                fields[f"config.{name}"] = value
        if unset:
            await self._repository.unset(integration_id, list(unset))
        if fields:
            updated = await self._repository.update(integration_id, fields)
        elif unset:
            updated = await self._repository.get(integration_id)
        else:
            updated = current
        if updated is None:
            raise NotFound(f"integration {integration_id} not found")
        if body.is_default:
            await self._repository.clear_default(
                updated["provider"], updated["workspace_id"], keep=integration_id
            )
        return updated

    @staticmethod
    def _cleared(provider: str, names: list[str]) -> dict[str, Any]:
        """The fields to remove for settings PATCHed to null: an optional setting is
        forgotten (a handshake's secret, so that the provider's next handshake is taken);
        a required one cannot be (422)."""
        entry = catalog_entry(provider)
        unset: dict[str, Any] = {}
        if names and not isinstance(entry.webhooks, Declared):
            # The first six's settings connect bots and webhooks (Telegram's secret_token
            # is in its setWebhook): they are replaced, or the integration disconnected.
            raise Invalid(
                f"{provider} settings are replaced, not cleared: give a new value",
                code="invalid_setting",
            )
        for name in names:
            setting = entry.setting(name)
            if setting is None:
                raise Invalid(f"{provider} takes no setting {name}", code="unknown_setting")
            if setting.required:
                raise Invalid(
                    f"setting {name} is required: give a new value instead of null",
                    code="invalid_setting",
                )
            unset[f"{'secrets' if setting.secret else 'config'}.{name}"] = ""
        return unset

    async def _claim_bot(self, current: Document, account: dict[str, Any]) -> None:
        """The bot an integration's new bot token names becomes this integration's, unless
        another holds it (409, and nothing changed)."""
        provider = str(current["provider"])
        key = await self._bot_free(
            provider, account, current["workspace_id"], besides=str(current["_id"])
        )
        if key is None or key == current.get("bot_key"):
            return
        try:
            await self._repository.update(str(current["_id"]), {"bot_key": key})
        except DuplicateKeyError as exc:
            raise self._bot_taken(provider, account, None) from exc

    async def delete(self, integration_id: str) -> None:
        current = await self._repository.get(integration_id)
        if current is None:
            raise NotFound(f"integration {integration_id} not found")
        if current["status"] in (Status.CONNECTED, Status.ERROR) or current.get("tokens"):
            await self.disconnect(integration_id)  # revoke first: a deleted grant stays dead
        # The bot is free again (bot_key cleared) for another integration.
        await self._repository.soft_delete(
            integration_id, secrets={}, tokens={}, oauth={}, bot_key=None
        )

    async def disconnect(self, integration_id: str) -> tuple[Document, Revocation]:
        """Revoke at the provider (or leave it to the retry loop when it cannot be reached),
        forget the tokens, mark it disconnected, publish `integration.disconnected`."""
        current = await self._repository.get(integration_id)
        if current is None:
            raise NotFound(f"integration {integration_id} not found")
        stored = {k: self._box.decrypt(v) for k, v in (current.get("tokens") or {}).items()}
        fields: dict[str, Any] = {
            "status": Status.DISCONNECTED.value,
            "tokens": {},
            "oauth": {},
            "bot_key": None,  # it receives nothing now: the bot may be another's
        }
        if current["provider"] == Provider.TELEGRAM and "bot_token" in current["secrets"]:
            # The bot token is the connection: deleteWebhook with it, then forget it.
            stored = {"bot_token": self._box.decrypt(current["secrets"]["bot_token"])}
            fields["secrets"] = {k: v for k, v in current["secrets"].items() if k != "bot_token"}
        slack_bot = current["provider"] == Provider.SLACK and "bot_token" in current["secrets"]
        if slack_bot:
            # A hand-installed app's token is forgotten, not revoked: auth.revoke would end
            # it for good, and the app is the user's to remove in Slack.
            fields["secrets"] = {k: v for k, v in current["secrets"].items() if k != "bot_token"}
        revocation: Revocation = "not_offered" if slack_bot else "nothing_to_revoke"
        if stored and not self._revoker.offered(current["provider"]):
            revocation = "not_offered"
        elif stored:
            done = await self._revoker.revoke(current, stored)
            revocation = "revoked" if done else "pending"
        updated = await self._repository.update(integration_id, fields)
        if updated is None:
            raise NotFound(f"integration {integration_id} not found")
        await publish_integration_event(
            self._publisher, integration_event(updated, "disconnected", revocation=revocation)
        )
        return updated, revocation
