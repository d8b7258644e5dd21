"""The providers that can be acted on from the channel (SPEC §20), by name. A provider
folder with an `acting.py` holding an `ACTING` (shared.providers.acting.Acting) offers
actions on its cards; nothing else lists them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.settings import Settings
from shared.providers.acting import Acting, Credentials
from shared.providers.catalog import CATALOG, provider_module


def _discover() -> dict[str, Acting]:
    found: dict[str, Acting] = {}
    for name in CATALOG:
        module = provider_module(name, "acting")
        if module is None:
            continue
        acting: Acting = module.ACTING
        assert acting.name == name, (acting.name, name)
        found[name] = acting
    return found


ACTORS: Mapping[str, Acting] = _discover()


def settings_of(integration: IntegrationSnapshot) -> dict[str, Any]:
    """An integration's settings and secrets as one mapping (secrets win a clash)."""
    return {**integration.config, **integration.secrets}


def can_act(integration: IntegrationSnapshot) -> Acting | None:
    """The provider's acting, if the integration has every setting it needs: an
    integration without them offers no actions and its cards have no buttons."""
    acting = ACTORS.get(integration.provider)
    if acting is None or not integration.enabled:
        return None
    held = settings_of(integration)
    return acting if all(held.get(name) for name in acting.settings) else None


def credentials(
    integration: IntegrationSnapshot, settings: Settings, user_token: str | None = None
) -> Credentials:
    """What `perform` acts with: the settings, the API base
    (`HOOKHUB_<PROVIDER>_API_BASE`, for tests and self-hosted providers; None where the
    provider's API is wherever the integration says), the user's token where the provider
    acts with it."""
    base = getattr(settings, f"{integration.provider}_api_base", "") or None
    return Credentials(settings_of(integration), api_base=base, user_token=user_token)
