// What the console knows about each provider: its icon, the settings an integration takes
// (all write-only) and where its webhook URL and secret go (docs/providers.md).

import { h } from "./dom.js";

export const PROVIDERS = {
  github: {
    title: "GitHub",
    colour: "#24292f",
    settings: [["webhook_secret", "Webhook secret", true]],
    steps: [
      "Repository or organization → Settings → Webhooks → Add webhook.",
      "Payload URL: the webhook URL above. Content type: application/json.",
      "Secret: the same webhook secret you gave this integration.",
      "Pick the events; GitHub sends a ping at once (event type “ping”).",
      "For actions (create issues), connect through OAuth: it asks for the default scopes below.",
    ],
  },
  slack: {
    title: "Slack",
    colour: "#4a154b",
    settings: [
      ["signing_secret", "Signing secret", false],
      ["bot_token", "Bot token (xoxb-…, an app installed by hand)", false],
    ],
    steps: [
      "api.slack.com → your app → Basic Information → App Credentials: copy the Signing Secret into this integration (or set HOOKHUB_SLACK_SIGNING_SECRET once).",
      "Event Subscriptions → Request URL: paste the webhook URL above; subscribe to the bot events message.channels and message.groups.",
      "Slash Commands and Interactivity & Shortcuts → Request URL: the same URL.",
      "Bot Token Scopes: chat:write, chat:write.customize, channels:read, groups:read, channels:history, groups:history, users:read.",
      "Invite the bot into each channel to sync: /invite @YourApp.",
    ],
  },
  discord: {
    title: "Discord",
    colour: "#5865f2",
    settings: [
      ["public_key", "Public key (64 hex digits)", false],
      ["bot_token", "Bot token (for sync)", false],
    ],
    steps: [
      "Developer Portal → your application → General Information: copy the Public Key into this integration (or set HOOKHUB_DISCORD_PUBLIC_KEY).",
      "Paste the webhook URL into Interactions Endpoint URL, and for Webhook Events into Webhooks → Endpoint URL.",
      "For sync: OAuth2 → URL Generator, scope bot, and invite the bot to your server.",
    ],
  },
  telegram: {
    title: "Telegram",
    colour: "#229ed9",
    settings: [
      ["bot_token", "Bot token (from @BotFather)", true],
      ["secret_token", "Secret token (generated when empty)", false],
    ],
    steps: [
      "Nothing to paste: hookhub checks the bot token with getMe and calls setWebhook with this URL itself.",
      "Add the bot to the groups to sync; for a group, turn its privacy mode off in @BotFather.",
    ],
  },
  jira: {
    title: "Jira",
    colour: "#0052cc",
    settings: [["webhook_secret", "Webhook secret", true]],
    steps: [
      "Jira → Settings → System → WebHooks → Create a WebHook.",
      "URL: the webhook URL above. Secret: this integration's webhook secret. Pick the events.",
      "For actions, connect through OAuth: it asks for the default scopes below.",
    ],
  },
  google: {
    title: "Google",
    colour: "#db4437",
    settings: [],
    steps: ["OAuth only: connect through OAuth; there is no webhook URL to paste."],
  },
};

export const PROVIDER_NAMES = Object.keys(PROVIDERS);

/** A provider's icon: its initial on its colour (no image fetched, nothing inline). */
export function providerIcon(provider) {
  const known = PROVIDERS[provider];
  const el = h(
    "span",
    { class: `picon picon-${known ? provider : "other"}`, role: "img", "aria-label": known ? known.title : String(provider) },
    (known ? known.title : String(provider || "?")).slice(0, 1).toUpperCase(),
  );
  return el;
}

export function providerTitle(provider) {
  return PROVIDERS[provider]?.title || String(provider);
}
