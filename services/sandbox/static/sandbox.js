// hookhub sandbox page: the stand-ins' channels, live, a box to write as a user, buttons
// that make GitHub and Jira send events, and every catalog provider's webhook, signed. Everything from the stand-ins and from hookhub is put
// in the page as text (textContent), never as HTML. Its API is docs/sandbox.md.

// The chat networks' tabs first, from the state (`chats`: one per network's stand-in),
// then the chat product's (the sandbox plays it: what hookhub hands the chat, its cards'
// buttons).
const CHAT_TAB = { chat: "Chat product" };
const OTHER_TABS = { github: "GitHub", jira: "Jira", webhooks: "Webhooks", credentials: "Credentials" };
let TABS = { ...OTHER_TABS };
const POLL_MS = 1500;

const main = document.getElementById("main");
const flash = document.getElementById("flash");
let state = null;
let tab = location.hash.slice(1);
const chosen = {}; // provider → channel id
const replyTo = {}; // provider → message id
let poll = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function call(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const answer = await fetch("/sandbox/api/" + path, options);
  const data = await answer.json().catch(() => null);
  if (!answer.ok) throw new Error(data?.error?.message || `${answer.status} ${answer.statusText}`);
  return data;
}

function say(text, ok = true) {
  flash.textContent = text;
  flash.className = ok ? "ok" : "bad";
}

function tabs() {
  const list = document.getElementById("tabs");
  list.replaceChildren(...Object.entries(TABS).map(([name, label]) => el("li", {},
    el("button", {
      type: "button", role: "tab", "aria-selected": String(name === tab), "data-tab": name,
      // What the last tab said is not this one's: said again, it read as this tab's.
      onclick: () => { tab = name; location.hash = name; say(""); render(); },
    }, label))));
}

async function render() {
  clearInterval(poll);
  poll = null;
  try {
    state = await call("state");
  } catch (error) {
    tabs();
    say(`The sandbox does not answer: ${error.message}`, false);
    return;
  }
  const chats = Object.fromEntries(Object.entries(state.chats).map(([name, chat]) => [name, chat.name]));
  TABS = { ...chats, ...CHAT_TAB, ...OTHER_TABS };
  if (!(tab in TABS)) tab = Object.keys(TABS)[0];
  tabs();
  if (tab === "chat") renderProduct();
  else if (tab in state.chats) renderChat(tab);
  else if (tab === "github") renderGitHub();
  else if (tab === "jira") renderJira();
  else if (tab === "webhooks") renderWebhooks();
  else renderCredentials();
}

// -- chats ------------------------------------------------------------------------------

function renderChat(provider) {
  const world = state[provider];
  const channel = chosen[provider] || world.channels[0]?.id;
  chosen[provider] = channel;
  const messages = el("ol", { class: "messages", "aria-live": "polite", "aria-label": "Messages" });
  const channels = el("ul", { class: "channels" }, world.channels.map((c) => el("li", {},
    el("button", {
      type: "button", "aria-current": String(c.id === channel),
      onclick: () => { chosen[provider] = c.id; replyTo[provider] = null; render(); },
    }, state.chats[provider].channel_mark + c.name))));
  const { form, showReply } = writer(provider, "Write as a user",
    el("label", {}, "As", el("select", { name: "user" },
      world.users.map((u) => el("option", { value: u.id }, u.name)))),
    async (body) => {
      // `/hookhub …` is the network's own command (docs/acting.md), not a message.
      if (state.chats[provider].can.command && /^\s*\/hookhub\b/.test(body.text)) {
        const sent = await call(`${provider}/commands`, { channel, user: form.user.value, text: body.text });
        return sent.delivered ? `Typed ${body.text.trim()}; hookhub answered ${sent.delivered}. ` +
          "Its answer comes in the channel, or to that user alone." :
          `Typed ${body.text.trim()}; not delivered to hookhub: no ${TABS[provider]} integration listens yet.`;
      }
      return delivery("Sent", provider, await call(`${provider}/messages`, { channel, user: form.user.value, ...body }));
    },
    () => refresh(),
    state.chats[provider].can.command ? "a message, or /hookhub list" : "");
  // A user's message being edited (its id): the list is not refreshed meanwhile, so the
  // box keeps what is typed in it.
  let editing = null;
  let items = [];
  const acts = {
    // A card's button, clicked as the user the box writes as.
    click: async (m, b) => {
      try {
        const done = await call(`${provider}/click`, { channel, message: m.id, action: b.action, user: form.user.value });
        say(`${author({ user: { name: form.user.selectedOptions[0]?.textContent } })} clicked ${b.label}; ` +
          (done.delivered ? `hookhub answered ${done.delivered}. Its reply comes in the card's thread.` : "not delivered to hookhub."));
      } catch (error) {
        say(error.message, false);
      }
    },
    reply: (m) => { replyTo[provider] = m.id; showReply(); },
    edit: (m) => { editing = m.id; draw(); messages.querySelector("form.edit textarea")?.focus(); },
    remove: async (m) => { if (await change(provider, m, "delete", { channel })) await refresh(); },
  };
  const save = async (m, text) => {
    if (!(await change(provider, m, "edit", { channel, text }))) return;
    editing = null;
    await refresh();
  };
  const cancel = () => { editing = null; draw(); };
  // What hookhub said to the user the box writes as, to them alone (an ask to link, their
  // command's private answer): not among the channel's messages, as the network shows it.
  const alone = el("ol", { class: "messages private", "aria-label": "Said to you alone" });
  let told = [];
  const draw = () => {
    shown(messages, items.length ?
      items.map((m) => m.id === editing ? editor(m, save, cancel) : message(provider, m, acts, items)) :
      [el("li", { class: "empty" }, "No messages yet.")]);
    const mine = told.filter((p) => p.user === form.user.value);
    shown(alone, mine.map((p) => el("li", {},
      el("span", { class: "badge" }, "hookhub"),
      el("span", { class: "meta" }, `only ${form.user.selectedOptions[0]?.textContent || p.user} sees this`),
      el("p", { class: "text" }, linked(p.text)))));
  };
  const refresh = async () => {
    if (!channel || editing) return;
    try {
      const found = await call(`${provider}/channels/${encodeURIComponent(channel)}/messages`);
      const privately = state.chats[provider].can.private ? await call(`${provider}/private`) : { items: [] };
      if (editing) return; // an edit begun meanwhile keeps its box
      items = found.items;
      told = privately.items;
      draw();
    } catch (error) {
      say(error.message, false);
    }
  };
  const name = world.channels.find((c) => c.id === channel)?.name || channel;
  main.replaceChildren(el("div", { class: "panel" },
    el("section", { class: "card", "aria-label": "Channels" }, el("h2", {}, `${TABS[provider]} channels`), channels,
      connect(provider, channel), sampleExport(provider)),
    el("section", { class: "card", "aria-label": `Channel ${name}` }, el("h2", {}, name), messages, alone, form,
      limits(provider))));
  form.user.addEventListener("change", () => draw());
  refresh();
  poll = setInterval(refresh, POLL_MS);
}

// What bridging this network takes, in the console: an integration made with these settings
// (Integrations, New integration) and a mapping of the channel's id (Sync mappings). A long
// value (a key file) in a box of its own, to copy whole.
function connect(provider, channel) {
  const settings = Object.entries(state.chats[provider].settings || {});
  const value = (k, v) => String(v).length > 80 ?
    el("textarea", { readonly: true, rows: 3, "aria-label": k, spellcheck: "false" }, v) : v;
  return el("details", { class: "export connect" }, el("summary", {}, "Connect it"),
    el("dl", { class: "creds" },
      el("dt", {}, "channel id"), el("dd", { class: "channel-id" }, channel || "—"),
      settings.map(([k, v]) => [el("dt", {}, k), el("dd", {}, value(k, v))])),
    el("p", { class: "hint" }, "In the ", el("a", { href: "/#/integrations" }, "console"),
      `: a ${TABS[provider]} integration in ${state.workspace_id} with these settings, then, on its Sync mappings, this channel id mapped to a chat channel.`));
}

// A channel's list redrawn with `children`, kept at its end when it was there (the newest
// message last, as a chat shows it; a list scrolled up stays where it was).
function shown(list, children) {
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.replaceChildren(...children);
  if (atEnd) list.scrollTop = list.scrollHeight;
}

// The box that writes in a channel (`fields` before its text), replying in the thread
// `replyTo[key]` names when one is picked: `send(body)` sends `{text, thread?}` and says
// what became of it; `refresh` redraws the channel.
function writer(key, label, fields, send, refresh, placeholder = "") {
  const replying = el("span", { class: "hint" });
  const form = el("form", { class: "write", "aria-label": label }, fields,
    el("label", {}, "Message", el("textarea", { name: "text", required: true, rows: 2, placeholder })),
    el("button", { class: "primary", type: "submit" }, "Send"),
    replying);
  const showReply = () => {
    replying.replaceChildren();
    if (replyTo[key]) {
      replying.append(`replying to ${replyTo[key]} `,
        el("button", { class: "link", type: "button", onclick: () => { replyTo[key] = null; showReply(); } }, "cancel"));
    }
  };
  showReply();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { text: form.text.value };
    if (replyTo[key]) body.thread = replyTo[key];
    try {
      say(await send(body));
      form.text.value = "";
      replyTo[key] = null;
      showReply();
      await refresh();
    } catch (error) {
      say(error.message, false);
    }
  });
  return { form, showReply };
}

// The sample export the sandbox serves (GET /sandbox/api/exports/{provider}), with the
// importer's `source` for it: the channels' history, to try an import with (docs/sandbox.md).
function sampleExport(provider) {
  const sample = state.chats[provider].export;
  if (!sample) return null;
  return el("div", { class: "export" }, el("h3", {}, "Sample export"),
    el("p", { class: "hint" }, "These channels' history, as ", sample.what, ": ",
      el("a", { href: `/sandbox/api/exports/${provider}`, download: "" }, "Download"),
      `, then upload it (POST /api/imports, source ${sample.source}); your mappings say where it goes. `,
      el("a", { href: "/sandbox/docs/sandbox.md" }, "How, in docs/sandbox.md"), "."));
}

// What the network does not tell hookhub of (state.chats.<network>.cannot), said once.
function limits(provider) {
  const reasons = [...new Set(Object.values(state.chats[provider].cannot || {}))];
  return reasons.length ? el("p", { class: "hint" }, reasons.map((r) => `${r}.`).join(" ")) : null;
}

// A user's message: "edit" and "delete" where the network tells hookhub of them (a
// message hookhub posted is the chat product's to change).
function message(provider, m, acts, items) {
  const can = m.from_hookhub ? {} : state.chats[provider].can || {};
  const link = (label, act) => el("button", { class: "link", type: "button", onclick: () => act(m) }, label);
  return el("li", { class: m.from_hookhub ? "hookhub" : "", "data-id": m.id },
    m.from_hookhub ? el("span", { class: "badge" }, "hookhub") : null,
    el("span", { class: "who" }, author(m)),
    m.thread ? el("span", { class: "meta" }, inReplyTo(m.thread, items)) : null,
    m.edited ? el("span", { class: "meta" }, "(edited)") : null,
    link("reply", acts.reply),
    can.edit ? link("edit", acts.edit) : null,
    can.delete ? link("delete", acts.remove) : null,
    el("p", { class: "text" }, linked(m.text)),
    buttons(m.buttons, (b) => acts.click(m, b)));
}

// A card's buttons (`[{action, label}]`), each clicked with `click(button)`.
function buttons(items, click) {
  if (!items?.length) return null;
  return el("div", { class: "buttons", role: "group", "aria-label": "Card actions" },
    items.map((b) => el("button", { class: "action", type: "button", "data-action": b.action, onclick: () => click(b) }, b.label)));
}

// Text with hookhub's own account-link addresses (an unlinked user's reply: its
// `/api/auth/oauth/link/<ticket>`) made links; everything else, and all of it as text.
function linked(text) {
  const origin = state.hookhub.origin.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`${origin}/api/auth/oauth/link/[A-Za-z0-9_-]+`, "g");
  const parts = [];
  let at = 0;
  for (const found of String(text).matchAll(pattern)) {
    parts.push(text.slice(at, found.index), el("a", { href: found[0], target: "_blank", rel: "noopener" }, found[0]));
    at = found.index + found[0].length;
  }
  parts.push(String(text).slice(at));
  return parts;
}

// -- the chat product ---------------------------------------------------------------------

// What hookhub handed the chat in the sandbox's workspace, channel by channel, its cards
// with their buttons; a click is `message.action` as the signed-in chat user. The chat's
// users write too (a message, a reply, their edit and delete: what sync posts to the
// channel's networks), and a network's message can be passed on to the channel's others.
function renderProduct() {
  const chat = state.chat;
  const known = chat.channels.map((c) => c.id);
  if (chosen.chat && !known.includes(chosen.chat)) known.push(chosen.chat); // opened, still empty
  const channel = chosen.chat || known[0];
  chosen.chat = channel;
  const who = el("select", { name: "user", onchange: (event) => { chosen.chatUser = event.target.value; } },
    chat.users.map((u) => el("option", { value: u.id, selected: u.id === chosen.chatUser }, u.name)));
  chosen.chatUser = who.value;
  const messages = el("ol", { class: "messages", "aria-live": "polite", "aria-label": "Messages" });
  const channels = el("ul", { class: "channels" }, known.map((c) => el("li", {},
    el("button", {
      type: "button", "aria-current": String(c === channel),
      onclick: () => { chosen.chat = c; replyTo.chat = null; render(); },
    }, c))));
  const opening = el("form", { class: "line", "aria-label": "Open a chat channel" },
    el("label", {}, "Channel id", el("input", { name: "channel", placeholder: "ch_everyone", required: true })),
    el("button", { class: "action", type: "submit" }, "Open"));
  opening.addEventListener("submit", (event) => {
    event.preventDefault();
    chosen.chat = opening.channel.value.trim();
    replyTo.chat = null;
    render();
  });
  const click = async (m, b) => {
    try {
      await call("chat/click", { channel, message: m.id, action: b.action, user: who.value });
      say(`${who.selectedOptions[0].textContent} clicked ${b.label} in the chat (message.action sent). Its reply comes in the card's thread.`);
    } catch (error) {
      say(error.message, false);
    }
  };
  // Writing as "You are": a message, or a reply in the thread "reply" picked.
  const { form, showReply } = writer("chat", "Write in the chat", null, async (body) => {
    const sent = await call("chat/messages", { channel, user: who.value, ...body });
    return `Sent in ${channel} as ${who.selectedOptions[0].textContent} (message.created ${sent.id}): hookhub posts it in every network mapped to ${channel}.`;
  }, () => refresh());
  let editing = null;
  let items = [];
  const change = async (m, action, body, done) => {
    try {
      await call(`chat/messages/${encodeURIComponent(m.id)}/${action}`, { channel, ...body });
      say(done);
      return true;
    } catch (error) {
      say(error.message, false);
      return false;
    }
  };
  const acts = {
    click,
    reply: (m) => { replyTo.chat = m.id; showReply(); form.text.focus(); },
    edit: (m) => { editing = m.id; draw(); messages.querySelector("form.edit textarea")?.focus(); },
    remove: async (m) => {
      if (await change(m, "delete", {}, `Deleted (message.deleted ${m.id}): hookhub deletes its copies.`)) await refresh();
    },
    passOn: async (m) => {
      if (await change(m, "pass_on", {}, `Passed on (message.created naming ${m.id} as inbound_id): the channel's other networks get it, ${networkName(m.from)} does not.`)) await refresh();
    },
  };
  const save = async (m, text) => {
    if (!(await change(m, "edit", { text }, `Edited (message.updated ${m.id}): hookhub edits its copies.`))) return;
    editing = null;
    await refresh();
  };
  const cancel = () => { editing = null; draw(); };
  const draw = () => shown(messages, items.length ?
    items.map((m) => m.id === editing ? editor(m, save, cancel) : chatMessage(m, acts, items)) :
    [el("li", { class: "empty" }, "No messages yet.")]);
  const refresh = async () => {
    if (!channel) {
      // No channel yet: the first message hookhub hands the chat makes one.
      const found = await call("state").catch(() => null);
      if (found && found.chat.channels.length) render();
      return;
    }
    if (editing) return;
    try {
      const found = await call(`chat/channels/${encodeURIComponent(channel)}/messages`).catch((error) => {
        if (!chat.channels.some((c) => c.id === channel)) return { items: [] }; // opened, nothing in it yet
        throw error;
      });
      if (editing) return;
      items = found.items;
      draw();
    } catch (error) {
      say(error.message, false);
    }
  };
  main.replaceChildren(el("div", { class: "panel" },
    el("section", { class: "card", "aria-label": "Chat channels" }, el("h2", {}, "Chat channels"),
      known.length ? channels : el("p", { class: "hint" },
        "None yet: a channel shows here once hookhub hands the chat a message for it (a notification of a subscription, a message from a mapped network), or once you open one."),
      opening,
      el("label", { class: "who" }, "You are", who),
      el("p", { class: "hint" }, "The sandbox plays the chat product of workspace ", state.workspace_id,
        ": it shows what hookhub hands the chat, and announces what hookhub made (cards, replies) as its own, so mapped networks get it with its buttons. ",
        "What you write here goes to every network mapped to the channel; a network's message reaches the others once you pass it on. ",
        chat.reading ? "" : "It is not reading hookhub.chat.inbound yet.")),
    el("section", { class: "card", "aria-label": `Chat channel ${channel || ""}` }, el("h2", {}, channel || "No channel"), messages,
      channel ? form : null)));
  refresh();
  poll = setInterval(refresh, POLL_MS);
}

// A message hookhub handed the chat, or one of the chat's users wrote: its author, where it
// came from, its thread, its text, its card (title, state, fields) and the card's buttons;
// "reply" on every message, "edit" and "delete" on the chat's own, "pass on" on a network's.
function chatMessage(m, acts, items) {
  const card = m.card;
  const link = (label, act) => el("button", { class: "link", type: "button", onclick: () => act(m) }, label);
  const fromNetwork = m.from && !m.from_hookhub && !m.mine;
  return el("li", { class: m.from_hookhub ? "hookhub" : "", "data-id": m.id },
    m.from_hookhub ? el("span", { class: "badge" }, "hookhub") : null,
    el("span", { class: "who" }, author(m)),
    fromNetwork ? el("span", { class: "meta" }, `from ${networkName(m.from)}`) : null,
    m.thread ? el("span", { class: "meta" }, inReplyTo(m.thread, items)) : null,
    m.edited ? el("span", { class: "meta" }, "(edited)") : null,
    m.passed_on ? el("span", { class: "meta" }, "(passed on)") : null,
    link("reply", acts.reply),
    m.mine ? link("edit", acts.edit) : null,
    m.mine ? link("delete", acts.remove) : null,
    fromNetwork && !m.passed_on ? link("pass on", acts.passOn) : null,
    card ? el("div", { class: "chatcard" },
      el("strong", {}, card.title || ""), card.state ? el("span", { class: "meta" }, card.state) : null,
      (card.fields || []).length ? el("dl", { class: "creds" }, card.fields.map((f) => [el("dt", {}, f.name), el("dd", {}, f.value)])) : null) : null,
    el("p", { class: "text" }, linked(m.text)),
    buttons((card?.actions || []).map((a) => ({ action: a.id, label: a.label })), (b) => acts.click(m, b)));
}

// A reply's thread as its reader knows it: the root's author and first words (the root's id
// where the list does not hold it).
function inReplyTo(thread, items) {
  const root = items.find((m) => m.id === thread);
  if (!root) return `in reply to ${thread}`;
  const words = String(root.text).replace(/\s+/g, " ").trim();
  return `in reply to ${author(root)}: “${words.length > 40 ? words.slice(0, 40).trimEnd() + "…" : words}”`;
}

function networkName(provider) {
  return state.chats[provider]?.name || provider;
}

function author(m) {
  return m.user?.name || m.user?.id || "?";
}

// The message being edited: its text in a box, saved as its author's edit.
function editor(m, save, cancel) {
  const form = el("form", { class: "edit", "aria-label": "Edit the message" },
    el("label", {}, "New text", el("textarea", { name: "text", required: true, rows: 2 }, m.text)),
    el("button", { class: "primary", type: "submit" }, "Save"),
    el("button", { class: "link", type: "button", onclick: cancel }, "cancel"));
  form.addEventListener("submit", (event) => { event.preventDefault(); save(m, form.text.value); });
  return el("li", { "data-id": m.id }, el("span", { class: "who" }, author(m)), form);
}

// A user's edit or delete (`action`), through the stand-in; whether it was made.
async function change(provider, m, action, body) {
  try {
    const done = await call(`${provider}/messages/${encodeURIComponent(m.id)}/${action}`, body);
    say(delivery(action === "edit" ? "Edited" : "Deleted", provider, done));
    return true;
  } catch (error) {
    say(error.message, false);
    return false;
  }
}

// `delivered`: hookhub's HTTP status, or true where the network's own connection carried
// it (Discord's Gateway, Mattermost's WebSocket: no status to tell).
function delivery(what, provider, sent) {
  if (sent.delivered === true) return `${what} (${sent.id}); told to hookhub over the connection sync holds to ${TABS[provider]}.`;
  return sent.delivered ? `${what} (${sent.id}); hookhub answered ${sent.delivered}.` :
    `${what} (${sent.id}); not delivered to hookhub: no ${TABS[provider]} integration listens yet.`;
}

// -- GitHub and Jira ----------------------------------------------------------------------

async function send(provider, event, params = {}) {
  try {
    const result = await call(`${provider}/events`, { event, ...params });
    const deliveries = result.deliveries || [];
    const statuses = deliveries.map((d) => d.status_code ?? d.status ?? "?").join(", ");
    say(deliveries.length ? `${TABS[provider]} sent ${event} to ${deliveries.length} webhook(s): ${statuses}` :
      `${TABS[provider]} made ${event}, but no webhook is registered: create a ${TABS[provider]} integration in hookhub first.`);
    await render();
  } catch (error) {
    say(error.message, false);
  }
}

function line(label, fields, onsubmit) {
  const form = el("form", { class: "line", "aria-label": label },
    fields.map(([name, text, value]) => el("label", {}, text, el("input", { name, value: value || "", required: true }))),
    el("button", { class: "primary", type: "submit" }, label));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onsubmit(Object.fromEntries(fields.map(([name]) => [name, form[name].value])));
  });
  return form;
}

function hooks(items) {
  return el("section", { class: "card", "aria-label": "Webhooks" }, el("h3", {}, "Webhooks registered"),
    items.length ? el("ul", { class: "items" }, items.map((h) => {
      const last = (h.deliveries || [])[0];
      return el("li", {}, h.url, el("span", { class: "state" },
        last ? `last answer ${last.status_code ?? last.status}` : "nothing sent yet"));
    })) :
      el("p", { class: "hint" }, "None yet: each hookhub integration of this provider is registered when an event is sent."));
}

function renderGitHub() {
  const repo = state.github.repositories[0];
  const full = repo.full_name;
  const pulls = repo.pull_requests.filter((p) => p.state === "open" || p.state === "draft");
  const action = (label, event, params) => el("button", {
    class: "action", type: "button", onclick: () => send("github", event, params),
  }, label);
  main.replaceChildren(el("div", { class: "grid2" },
    el("section", { class: "card", "aria-label": "Pull requests" }, el("h2", {}, `${full}: pull requests`),
      el("ul", { class: "items" }, pulls.length ? pulls.map((p) => el("li", {}, `#${p.number} ${p.title}`,
        el("span", { class: "state" }, p.state),
        el("div", {},
          action("Approve", "pull_request_review.submitted", { number: p.number, state: "approved" }),
          action("Comment", "issue_comment.created", { number: p.number, body: "Looks good from the sandbox." }),
          action("Merge", "pull_request.merged", { number: p.number })))) :
        [el("li", { class: "hint" }, "No open pull request.")]),
      line("Open a pull request", [["title", "Title", "Add the widget endpoint"]], (v) => send("github", "pull_request.opened", { ...v, repository: full })),
      line("Push", [["branch", "Branch", repo.default_branch], ["commits", "Commit message", "Fix the build"]], (v) => send("github", "push", { ...v, repository: full }))),
    el("section", { class: "card", "aria-label": "Issues" }, el("h2", {}, `${full}: issues`),
      el("ul", { class: "items" }, repo.issues.map((i) => el("li", {}, `#${i.number} ${i.title}`, el("span", { class: "state" }, i.state)))),
      line("Open an issue", [["title", "Title", "The widget is upside down"]], (v) => send("github", "issues.opened", { ...v, repository: full }))),
    hooks(repo.hooks)));
}

function renderJira() {
  const jira = state.jira;
  const project = jira.projects[0];
  const statuses = jira.statuses;
  const next = (status) => statuses[(statuses.indexOf(status) + 1) % statuses.length];
  main.replaceChildren(el("div", { class: "grid2" },
    el("section", { class: "card", "aria-label": "Jira issues" }, el("h2", {}, `${project.key}: ${project.name}`),
      el("ul", { class: "items" }, project.issues.map((i) => el("li", {}, `${i.key} ${i.summary}`,
        el("span", { class: "state" }, i.status),
        el("div", {},
          el("button", { class: "action", type: "button", onclick: () => send("jira", "jira:issue_updated", { key: i.key, status: next(i.status) }) }, `Move to ${next(i.status)}`),
          el("button", { class: "action", type: "button", onclick: () => send("jira", "comment_created", { key: i.key, body: "Seen in the sandbox." }) }, "Comment"))))),
      line("Open an issue", [["summary", "Summary", "Users cannot sign in"]], (v) => send("jira", "jira:issue_created", { ...v, project: project.key }))),
    hooks(jira.hooks)));
}

// -- every catalog provider's webhook ---------------------------------------------------

async function renderWebhooks() {
  let items = [];
  try {
    ({ items } = await call("webhooks"));
  } catch (error) {
    say(error.message, false);
    return;
  }
  const answer = el("div", { class: "answer", "aria-live": "polite" },
    el("p", { class: "hint" }, "Nothing sent yet."));
  const byName = Object.fromEntries(items.map((p) => [p.provider, p]));
  // A provider's samples, the one sent when none is picked first (docs/sandbox.md).
  const sample = el("select", { name: "sample" });
  const showSamples = (provider) => sample.replaceChildren(...(byName[provider]?.samples || [])
    .map((file, i) => el("option", { value: file }, i ? file : `${file} (first)`)));
  const form = el("form", { class: "line", "aria-label": "Send a provider's webhook" },
    el("label", {}, "Provider", el("select", { name: "provider", onchange: (event) => showSamples(event.target.value) },
      items.map((p) => el("option", { value: p.provider }, `${p.name} (${p.category})`)))),
    el("label", {}, "Sample", sample),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "fresh" }),
      "A new item (PagerDuty, Opsgenie, Alertmanager: a new incident, alert or alert group, its card acted on at the sandbox's stand-in)"),
    el("label", {}, "Post in chat channel (optional)", el("input", { name: "channel_id", placeholder: "ch_everyone" })),
    el("label", {}, "Your integration id (optional)", el("input", { name: "integration_id", placeholder: "the sandbox's own" })),
    el("label", {}, "Its settings, as JSON", el("textarea", { name: "settings", rows: 2, placeholder: '{"signing_secret": "whsec_…"}' })),
    el("button", { class: "primary", type: "submit" }, "Send the webhook"));
  showSamples(items[0]?.provider);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { sample: form.sample.value };
    // A subscription of the integration posting there, made first if there is none.
    if (form.channel_id.value.trim()) body.channel_id = form.channel_id.value.trim();
    if (form.fresh.checked) body.fresh = true;
    if (form.integration_id.value.trim()) body.integration_id = form.integration_id.value.trim();
    if (form.settings.value.trim()) {
      try {
        body.settings = JSON.parse(form.settings.value);
      } catch {
        say("The settings are not JSON: write them as {\"name\": \"value\"}.", false);
        return;
      }
    }
    try {
      const sent = await call(`webhooks/${encodeURIComponent(form.provider.value)}`, body);
      const told = became(sent, byName[sent.provider]?.name || sent.provider);
      say(`${sent.provider}: hookhub answered ${sent.status}. ${told[0]}`, sent.status < 300);
      answer.replaceChildren(sentWebhook(sent, told));
    } catch (error) {
      say(error.message, false);
    }
  });
  main.replaceChildren(el("section", { class: "card", "aria-label": "Send a provider's webhook" },
    el("h2", {}, "Send a provider's webhook"),
    el("p", { class: "hint" }, "Each provider's documented sample webhook, signed as the provider signs it, sent to hookhub: ",
      "to the sandbox's own integration of it (made in ", state.workspace_id, " on first use), or to yours with the settings you gave it ",
      "(hookhub never shows a secret). The same sample twice is a redelivery: answered 200, published once; ",
      "pick another sample (an alert firing, then resolved) to go on. ",
      el("a", { href: "/sandbox/docs/sandbox.md" }, "docs/sandbox.md"), "."),
    form, answer));
}

// What became of a sent webhook, in sentences, the first the gist: published or a
// redelivery, and what each subscription of the integration does with it.
function became(sent, name) {
  if (sent.status >= 300) return [sent.answer?.error?.message || "Refused: nothing published."];
  if (sent.outcome === "duplicate") {
    return [`A redelivery: ${sent.sample} was sent to this integration before, so hookhub did not publish it again. Pick another sample.`];
  }
  if (sent.outcome !== "accepted") return ["Answered; nothing to publish."];
  const told = sent.notification;
  if (!told) return ["Published on hookhub.provider.events."];
  if (told.unrenderable) return [`Published, but no message can be made of it: ${told.unrenderable}`];
  if (told.quiet) return [`Published; it makes no message: ${told.quiet}.`];
  const subscriptions = told.subscriptions;
  if (!subscriptions) return ["Published on hookhub.provider.events."];
  if (!subscriptions.length) {
    return [`Published; no subscription of this integration posts it yet: subscribe a channel on its page in the console.`];
  }
  const lines = subscriptions.map((s) => {
    if (s.left_out === null) {
      return told.needs_root ? `Subscription ${s.id} posts it in ${s.channel_id}, in the thread of its item if one is open there.`
        : `Subscription ${s.id} posts it in ${s.channel_id}.`;
    }
    if (s.left_out === "event") {
      return told.default ? `Subscription ${s.id} (${s.channel_id}) leaves it out: ${told.event} is not among its events.`
        : `Filtered: subscription ${s.id} (${s.channel_id}) leaves it out: ${told.event} is not among ${name}'s default events (name it in the subscription's events, or pick another sample).`;
    }
    return `Filtered: subscription ${s.id} (${s.channel_id}) leaves it out (${s.left_out}).`;
  });
  const posted = subscriptions.filter((s) => s.left_out === null).length;
  const gist = posted ? `Published; ${posted} of ${subscriptions.length} subscription(s) post it.`
    : lines.find((line) => line.startsWith("Filtered")) || lines[0];
  return [gist, ...lines.filter((line) => line !== gist)];
}

function sentWebhook(sent, told) {
  const shown = typeof sent.answer === "string" ? sent.answer : JSON.stringify(sent.answer, null, 2);
  return el("div", {},
    el("ul", { class: "items told", "aria-label": "What became of it" }, told.map((line) => el("li", {}, line))),
    el("dl", { class: "creds" },
      el("dt", {}, "status"), el("dd", { class: "status" }, String(sent.status)),
      el("dt", {}, "outcome"), el("dd", { class: "outcome" }, sent.outcome ?? "—"),
      el("dt", {}, "sample"), el("dd", { class: "sample" }, sent.sample),
      el("dt", {}, "event_type"), el("dd", {}, sent.event_type ?? "—"),
      el("dt", {}, "integration"), el("dd", {}, sent.integration_id),
      el("dt", {}, "webhook_url"), el("dd", {}, sent.webhook_url)),
    el("h3", {}, "hookhub's answer"), el("pre", { class: "payload" }, shown),
    el("h3", {}, "Headers sent"),
    el("dl", { class: "creds" }, Object.entries(sent.sent_headers).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
}

// -- credentials --------------------------------------------------------------------------

function renderCredentials() {
  const sections = Object.entries(state).filter(([name, v]) => name !== "chats" && v && typeof v === "object").map(([name, values]) => {
    const rows = Object.entries(values).filter(([, v]) => v === null || typeof v !== "object");
    return el("section", { class: "card", "aria-label": name }, el("h2", {}, TABS[name] || name),
      el("dl", { class: "creds" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")])));
  });
  main.replaceChildren(el("p", { class: "hint" },
    `hookhub workspace for the walk-throughs: ${state.workspace_id}. These are the stand-ins' made-up credentials: create integrations with them.`),
    el("div", { class: "grid2" }, sections));
}

render();
