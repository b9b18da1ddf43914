/**
 * The Connect Chat web client: plain DOM over the SDK, no framework (the screens are a few
 * lists and forms; a framework would add more to download than this file). Bundled for the
 * browser by dev/web-client.ts. Every tab is one device: its device id, signed-in user and the
 * SDK's state (inbox position, unsent messages) live in sessionStorage, so a reload resumes
 * where the tab was instead of replaying, and the SDK's dedup keeps each message shown once.
 *
 * Screens: sign-in (a dev token, fetched through the page's own server), the conversation list
 * (unread counts, presence of direct peers), direct and group creation, and the open
 * conversation (history paged in on scroll, sent/delivered/read on own messages from the
 * members' receipts, typing). The header says which region the tab is connected to.
 */
import {
  ChatClient,
  type ClientStateStore,
  newClientMsgId,
  type PersistedState,
  type RegionEndpoint,
} from "../client/index.ts";
import {
  type Conversation,
  ConversationKind,
  MembershipAction,
  type Message,
  type Receipt,
  ReceiptKind,
} from "../gen/chat/v1/types_pb.ts";

const el = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing`);
  return found as T;
};

/** SessionStore keeps the SDK's state in this tab's sessionStorage. */
class SessionStore implements ClientStateStore {
  readonly #key: string;
  constructor(key: string) {
    this.#key = key;
  }
  load(): PersistedState | undefined {
    const saved = sessionStorage.getItem(this.#key);
    return saved ? (JSON.parse(saved) as PersistedState) : undefined;
  }
  save(state: PersistedState): void {
    sessionStorage.setItem(this.#key, JSON.stringify(state));
  }
}

type Vector = Map<string, bigint>;
interface ConversationView {
  conversation: Conversation;
  /** unread holds the keys of others' messages not read here (a set: a replay adds nothing). */
  unread: Set<string>;
  /** receipts: member → what that member's devices have had delivered and have read. */
  receipts: Map<string, { delivered: Vector; read: Vector }>;
}

const conversations = new Map<string, ConversationView>();
/** shown maps the open conversation's message keys to their list items. */
const shown = new Map<string, HTMLLIElement>();
let client: ChatClient | undefined;
let current: string | undefined;
/** pageSize is how many messages a history page holds (from /config.json). */
let pageSize = 50;
/** paging: where the open conversation's next older page starts. */
let paging: { first: Message | undefined; hasMore: boolean; loading: boolean } = {
  first: undefined,
  hasMore: false,
  loading: false,
};
/** presence: who of the members of our conversations is online. */
const online = new Map<string, boolean>();
/** typers: who is typing in the open conversation, each until a timer says they stopped. */
const typers = new Map<string, ReturnType<typeof setTimeout>>();
/** TYPING_* pace our own typing indicator: refreshed while typing, cleared after a pause. */
const TYPING_REFRESH_MS = 3_000;
const TYPING_IDLE_MS = 5_000;
const TYPING_SHOWN_MS = 6_000;
let typingSentAt = 0;
let typingIdle: ReturnType<typeof setTimeout> | undefined;

/**
 * stats are this tab's message counts, for the regions view of a two-region dev run (the
 * server's /config.json says `"stats": true` then): texts sent, acknowledged, and delivered
 * here from others, and duplicates, a message the SDK handed over a second time (the page
 * would show it twice) — always 0. Kept in sessionStorage, so a reload does not reset them.
 */
const stats: { sent: number; acked: number; delivered: number; duplicates: number } = JSON.parse(
  sessionStorage.getItem("chat.stats") ?? '{"sent":0,"acked":0,"delivered":0,"duplicates":0}',
);
/** received: keys of others' messages delivered to this tab since it loaded. */
const received = new Set<string>();
let statsChanged = true;
function count(what: keyof typeof stats): void {
  stats[what]++;
  statsChanged = true;
  sessionStorage.setItem("chat.stats", JSON.stringify(stats));
}

/** reportStats posts the counts to the dev server once a second, when they changed. */
function reportStats(device: string): void {
  setInterval(() => {
    if (!statsChanged) return;
    statsChanged = false;
    fetch("/api/stats", {
      method: "POST",
      headers: { "content-type": "application/json", "x-regions-view": "1" },
      body: JSON.stringify({ device, ...stats }),
    }).catch(() => {
      statsChanged = true;
    });
  }, 1_000);
}

/** keyOf identifies a send across copies and replays, as the SDK does. */
const keyOf = (m: Pick<Message, "conversationId" | "senderId" | "clientMsgId">) =>
  `${m.conversationId}/${m.senderId}/${m.clientMsgId}`;

const vectorOf = (r: Receipt): Vector => new Map(Object.entries(r.upTo?.seqs ?? {}));
const covers = (v: Vector | undefined, m: Message) =>
  v !== undefined && (v.get(m.originRegion) ?? 0n) >= m.seq;

function showError(err: unknown): void {
  el("error").textContent = err instanceof Error ? err.message : String(err);
}

function setStatus(text: string): void {
  el("status").textContent = text;
}

// --- conversations ---------------------------------------------------------------------------

function titleOf(c: Conversation): string {
  if (c.kind === ConversationKind.DIRECT) {
    return c.memberIds.find((id) => id !== client?.userId) ?? c.memberIds[0] ?? c.id;
  }
  return c.title || c.id;
}

function renderConversations(): void {
  const list = el("conversations");
  list.replaceChildren(
    ...[...conversations.values()].map((v) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.id = v.conversation.id;
      const kind = v.conversation.kind === ConversationKind.GROUP ? "group" : "direct";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = titleOf(v.conversation);
      const unread = document.createElement("span");
      unread.className = "unread";
      unread.textContent = v.unread.size > 0 ? String(v.unread.size) : "";
      const peer = v.conversation.kind === ConversationKind.DIRECT ? titleOf(v.conversation) : "";
      const dot = document.createElement("span");
      dot.className = peer && online.get(peer) ? "dot online" : "dot";
      dot.hidden = !peer;
      const status = peer ? (online.get(peer) ? ", online" : ", offline") : "";
      button.setAttribute(
        "aria-label",
        `${titleOf(v.conversation)} (${kind})${v.unread.size > 0 ? `, ${v.unread.size} unread` : ""}${status}`,
      );
      if (v.conversation.id === current) button.setAttribute("aria-current", "true");
      name.prepend(dot);
      button.append(name, unread);
      button.addEventListener("click", () => void openConversation(v.conversation.id));
      item.append(button);
      return item;
    }),
  );
}

/** track adds a conversation to the list, with what is unread in its newest page. */
async function track(conversation: Conversation): Promise<ConversationView> {
  const known = conversations.get(conversation.id);
  if (known) {
    known.conversation = conversation;
    return known;
  }
  const view: ConversationView = { conversation, unread: new Set(), receipts: new Map() };
  conversations.set(conversation.id, view);
  const c = client as ChatClient;
  // Listings leave the members out: the page needs them (names, presence, receipts).
  const [full, history, receipts] = await Promise.all([
    conversation.memberIds.length > 0 ? conversation : c.getConversation(conversation.id),
    c.history(conversation.id, { limit: 50 }),
    c.receipts(conversation.id),
  ]);
  view.conversation = full;
  for (const r of receipts) noteReceipt(view, r);
  const mine = view.receipts.get(c.userId)?.read;
  if (conversation.id !== current) {
    for (const m of history.messages) {
      if (m.senderId !== c.userId && m.content.case === "text" && !covers(mine, m)) {
        view.unread.add(keyOf(m));
      }
    }
  }
  return view;
}

async function loadConversations(): Promise<void> {
  const c = client as ChatClient;
  let pageToken = "";
  do {
    const page = await c.listConversations({ pageToken, limit: 100 });
    await Promise.all(page.conversations.map(track));
    pageToken = page.nextPageToken;
  } while (pageToken);
  renderConversations();
}

// --- the open conversation -------------------------------------------------------------------

function stateOf(view: ConversationView, m: Message): "sent" | "delivered" | "read" {
  const others = view.conversation.memberIds.filter((id) => id !== m.senderId);
  if (others.length === 0) return "sent";
  const all = (has: (r: { delivered: Vector; read: Vector } | undefined) => boolean) =>
    others.every((id) => has(view.receipts.get(id)));
  if (all((r) => covers(r?.read, m))) return "read";
  if (all((r) => covers(r?.delivered, m) || covers(r?.read, m))) return "delivered";
  return "sent";
}

function setState(item: HTMLLIElement, state: string): void {
  item.dataset.state = state;
  const badge = item.querySelector(".state");
  if (badge) badge.textContent = state;
}

function messageItem(m: Message, pending = false): HTMLLIElement {
  const item = document.createElement("li");
  item.dataset.key = keyOf(m);
  if (m.content.case !== "text") {
    item.className = "system";
    const change = m.content.value;
    const who = change?.userIds.join(", ") ?? "";
    const what: Record<number, string> = {
      [MembershipAction.CREATED]: `created ${change?.title ? `“${change.title}”` : "the conversation"} with ${who}`,
      [MembershipAction.ADDED]: `added ${who}`,
      [MembershipAction.REMOVED]: `removed ${who}`,
      [MembershipAction.LEFT]: "left",
    };
    item.textContent = `${m.senderId} ${what[change?.action ?? 0] ?? "changed the members"}`;
    return item;
  }
  const own = m.senderId === client?.userId;
  item.className = own ? "msg own" : "msg";
  const sender = document.createElement("span");
  sender.className = "sender";
  sender.textContent = own ? "You" : m.senderId;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.content.value;
  item.append(sender, text);
  if (own) {
    const badge = document.createElement("span");
    badge.className = "state";
    item.append(badge);
    const view = conversations.get(m.conversationId);
    setState(item, pending || !view ? "sending" : stateOf(view, m));
  }
  return item;
}

/** show adds a message to the open conversation unless it is there already. */
function show(m: Message): void {
  const key = keyOf(m);
  const existing = shown.get(key);
  if (existing) {
    // Our own send, shown while it was sending: now it is stored.
    const view = conversations.get(m.conversationId);
    if (existing.dataset.state === "sending" && view) setState(existing, stateOf(view, m));
    existing.dataset.seq = String(m.seq);
    existing.dataset.origin = m.originRegion;
    return;
  }
  const item = messageItem(m);
  item.dataset.seq = String(m.seq);
  item.dataset.origin = m.originRegion;
  shown.set(key, item);
  const scroller = el("scroller");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  el("messages").append(item);
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

/** loadOlder puts the page before the first message shown on top, keeping the view still. */
async function loadOlder(): Promise<void> {
  const id = current;
  const first = paging.first;
  if (!id || !first || !paging.hasMore || paging.loading) return;
  paging.loading = true;
  try {
    const page = await (client as ChatClient).history(id, {
      before: { hlc: first.hlc, originRegion: first.originRegion, seq: first.seq },
      limit: pageSize,
    });
    if (current !== id) return;
    const scroller = el("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const items: HTMLLIElement[] = [];
    for (const m of page.messages) {
      if (shown.has(keyOf(m))) continue;
      const item = messageItem(m);
      item.dataset.seq = String(m.seq);
      item.dataset.origin = m.originRegion;
      shown.set(keyOf(m), item);
      items.push(item);
    }
    el("messages").prepend(...items);
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
    paging.first = page.messages[0] ?? first;
    paging.hasMore = page.hasMore && page.messages.length > 0;
    el("older").hidden = !paging.hasMore;
  } finally {
    paging.loading = false;
  }
}

/** refreshStates recomputes sent/delivered/read of the open conversation's own messages. */
function refreshStates(view: ConversationView): void {
  for (const item of shown.values()) {
    if (!item.classList.contains("own") || item.dataset.state === "sending") continue;
    const m = {
      originRegion: item.dataset.origin ?? "",
      seq: BigInt(item.dataset.seq ?? "0"),
      senderId: client?.userId ?? "",
    } as Message;
    setState(item, stateOf(view, m));
  }
}

/** readUpTo is the latest position per origin region of what the open conversation shows. */
function readUpTo(): Vector {
  const upTo: Vector = new Map();
  for (const item of shown.values()) {
    const origin = item.dataset.origin;
    if (!origin) continue;
    const seq = BigInt(item.dataset.seq ?? "0");
    if (seq > (upTo.get(origin) ?? 0n)) upTo.set(origin, seq);
  }
  return upTo;
}

async function markRead(view: ConversationView): Promise<void> {
  view.unread.clear();
  renderConversations();
  const upTo = readUpTo();
  if (upTo.size > 0) await client?.markRead(view.conversation.id, upTo);
}

async function openConversation(id: string): Promise<void> {
  const c = client as ChatClient;
  const view = conversations.get(id);
  if (!view) return;
  current = id;
  // Remembered, so a reload comes back to it.
  sessionStorage.setItem("chat.open", id);
  shown.clear();
  for (const timer of typers.values()) clearTimeout(timer);
  typers.clear();
  renderTyping();
  paging = { first: undefined, hasMore: false, loading: true };
  el("older").hidden = true;
  el("messages").replaceChildren();
  el("conversation-title").textContent = titleOf(view.conversation);
  el("send-form").hidden = false;
  renderConversations();
  renderPresence();
  try {
    const [history, receipts] = await Promise.all([
      c.history(id, { limit: pageSize }),
      c.receipts(id),
    ]);
    if (current !== id) return;
    for (const r of receipts) noteReceipt(view, r);
    for (const m of history.messages) show(m);
    paging = { first: history.messages[0], hasMore: history.hasMore, loading: false };
    el("older").hidden = !paging.hasMore;
    el("scroller").scrollTop = el("scroller").scrollHeight;
    await markRead(view);
  } catch (err) {
    showError(err);
  }
  el<HTMLInputElement>("text").focus();
}

function noteReceipt(view: ConversationView, r: Receipt): void {
  const entry = view.receipts.get(r.userId) ?? { delivered: new Map(), read: new Map() };
  const target = r.kind === ReceiptKind.READ ? entry.read : entry.delivered;
  for (const [region, seq] of vectorOf(r)) {
    if (seq > (target.get(region) ?? 0n)) target.set(region, seq);
  }
  view.receipts.set(r.userId, entry);
}

// --- events ----------------------------------------------------------------------------------

async function onMessage(m: Message): Promise<void> {
  let view = conversations.get(m.conversationId);
  if (!view) {
    // A conversation someone else started (or a group we were added to).
    view = await track(await (client as ChatClient).getConversation(m.conversationId));
    void watchPresence().catch(showError);
  }
  // Presence is shared once both users have written in a conversation they share: a message
  // from (or to) someone not seen online may be what makes them visible.
  if (view.conversation.memberIds.some((id) => id !== client?.userId && !online.get(id))) {
    rewatch();
  }
  if (m.conversationId === current) {
    stopTyping(m.senderId);
    show(m);
    if (m.senderId !== client?.userId) await markRead(view);
    return;
  }
  if (m.senderId !== client?.userId && m.content.case === "text") view.unread.add(keyOf(m));
  renderConversations();
}

async function send(text: string): Promise<void> {
  const c = client as ChatClient;
  const id = current;
  if (!id) return;
  const clientMsgId = newClientMsgId();
  const draft = {
    conversationId: id,
    senderId: c.userId,
    clientMsgId,
    seq: 0n,
    originRegion: "",
    content: { case: "text", value: text },
  } as Message;
  const item = messageItem(draft, true);
  shown.set(keyOf(draft), item);
  const list = el("messages");
  list.append(item);
  list.scrollTop = list.scrollHeight;
  if (typingSentAt > 0) void setTyping(false);
  count("sent");
  const stored = await c.send(id, text, { clientMsgId });
  count("acked");
  if (current === id) show(stored);
  const view = conversations.get(id);
  if (view?.conversation.memberIds.some((u) => u !== c.userId && !online.get(u))) rewatch();
}

// --- typing and presence --------------------------------------------------------------------

function renderTyping(): void {
  const names = [...typers.keys()];
  el("typing").textContent =
    names.length === 0 ? "" : `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…`;
}

function stopTyping(userId: string): void {
  clearTimeout(typers.get(userId));
  if (typers.delete(userId)) renderTyping();
}

/** setTyping tells the open conversation's members whether this user is typing. */
async function setTyping(active: boolean): Promise<void> {
  const id = current;
  clearTimeout(typingIdle);
  typingSentAt = active ? Date.now() : 0;
  if (active) typingIdle = setTimeout(() => void setTyping(false), TYPING_IDLE_MS);
  if (id) await client?.setTyping(id, active).catch(() => undefined);
}

function renderPresence(): void {
  const view = current ? conversations.get(current) : undefined;
  const others = view?.conversation.memberIds.filter((id) => id !== client?.userId) ?? [];
  const here = others.filter((id) => online.get(id));
  el("presence").textContent =
    !view || others.length === 0
      ? ""
      : view.conversation.kind === ConversationKind.DIRECT
        ? `${others[0]} is ${here.length > 0 ? "online" : "offline"}`
        : `${here.length} of ${others.length} other members online${here.length > 0 ? `: ${here.join(", ")}` : ""}`;
}

let rewatchTimer: ReturnType<typeof setTimeout> | undefined;
/** rewatch renews the presence watch soon, once for a burst of messages. */
function rewatch(): void {
  if (rewatchTimer) return;
  rewatchTimer = setTimeout(() => {
    rewatchTimer = undefined;
    watchPresence().catch(showError);
  }, 300);
}

/** watchPresence follows every member of our conversations (the server keeps one list). */
async function watchPresence(): Promise<void> {
  const c = client as ChatClient;
  const users = new Set<string>();
  for (const v of conversations.values()) {
    for (const id of v.conversation.memberIds) if (id !== c.userId) users.add(id);
  }
  if (users.size === 0) return;
  for (const p of await c.watchPresence([...users])) online.set(p.userId, p.online);
  renderConversations();
  renderPresence();
}

// --- sign-in ---------------------------------------------------------------------------------

async function signIn(user: string): Promise<void> {
  const config = (await (await fetch("/config.json")).json()) as {
    regions: RegionEndpoint[];
    historyPageSize?: number;
    stats?: boolean;
  };
  pageSize = config.historyPageSize ?? pageSize;
  let deviceId = sessionStorage.getItem("chat.device");
  if (!deviceId) {
    deviceId = `web-${newClientMsgId().slice(0, 8)}`;
    sessionStorage.setItem("chat.device", deviceId);
  }
  const token = async () => {
    const res = await fetch(`/token?user=${encodeURIComponent(user)}`);
    const body = (await res.json()) as { token?: string; error?: string };
    if (!res.ok || !body.token) throw new Error(body.error ?? `sign-in failed (${res.status})`);
    return body.token;
  };
  // Fail on a refused user id before dialling.
  await token();
  const one = config.regions.length === 1 && !config.regions[0]?.name;
  // ?region=<name> (the regions view's "Chat in …" links): prefer that region while it answers.
  const wanted = new URLSearchParams(location.search).get("region");
  const preferRegion = config.regions.some((r) => r.name === wanted)
    ? (wanted as string)
    : undefined;
  const c = new ChatClient({
    ...(one ? { url: config.regions[0]?.url } : { regions: config.regions, preferRegion }),
    token,
    deviceId,
    client: "connect-chat-web",
    state: new SessionStore(`chat.state.${user}.${deviceId}`),
    onListenerError: showError,
  });
  client = c;
  if (config.stats) reportStats(deviceId);
  // The region this tab is connected to, and why it moved when it fails over (the SDK picks
  // the nearest region and moves only when the connection to it is lost).
  let moved = "";
  c.on("region", ({ from, reason }) => {
    moved = from ? ` (moved from ${from}: ${reason})` : "";
  });
  c.on("connected", (w) => {
    const region = document.createElement("strong");
    region.id = "region";
    region.textContent = w.region;
    el("status").replaceChildren(`Signed in as ${w.userId} (${deviceId}), region `, region, moved);
  });
  c.on("disconnected", ({ reconnectInMs }) => {
    if (reconnectInMs !== undefined) setStatus("Connection lost; reconnecting…");
  });
  c.on("message", (m) => {
    if (m.senderId !== c.userId && m.content.case === "text") {
      const key = keyOf(m);
      if (received.has(key)) count("duplicates");
      else count("delivered");
      received.add(key);
    }
    void onMessage(m).catch(showError);
  });
  c.on("receipt", (r) => {
    const view = conversations.get(r.conversationId);
    if (!view) return;
    noteReceipt(view, r);
    if (r.conversationId === current) refreshStates(view);
  });
  c.on("typing", (typing) => {
    if (typing.conversationId !== current || typing.userId === c.userId) return;
    stopTyping(typing.userId);
    if (!typing.active) return;
    typers.set(
      typing.userId,
      setTimeout(() => stopTyping(typing.userId), TYPING_SHOWN_MS),
    );
    renderTyping();
  });
  c.on("presence", (p) => {
    online.set(p.userId, p.online);
    renderConversations();
    renderPresence();
  });
  // A watch lives as long as its connection: renew it on every reconnection.
  c.on("connected", () => {
    if (conversations.size > 0) void watchPresence().catch(showError);
  });
  c.on("error", showError);
  setStatus("Connecting…");
  await c.connect();
  sessionStorage.setItem("chat.user", user);
  el("signin").hidden = true;
  el("chat").hidden = false;
  await loadConversations();
  await watchPresence();
  const open = sessionStorage.getItem("chat.open");
  if (open && conversations.has(open)) await openConversation(open);
}

function onSubmit(id: string, handler: (form: HTMLFormElement) => Promise<void>): void {
  const form = el<HTMLFormElement>(id);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    el("error").textContent = "";
    handler(form).catch(showError);
  });
}

const input = (id: string) => el<HTMLInputElement>(id);

onSubmit("signin-form", async () => {
  await signIn(input("user").value.trim());
});

onSubmit("direct-form", async () => {
  const conversation = await (client as ChatClient).createDirect(input("direct-user").value.trim());
  input("direct-user").value = "";
  await track(conversation);
  await watchPresence();
  await openConversation(conversation.id);
});

onSubmit("group-form", async () => {
  const members = input("group-members")
    .value.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const conversation = await (client as ChatClient).createGroup(
    input("group-title").value.trim(),
    members,
  );
  input("group-title").value = "";
  input("group-members").value = "";
  await track(conversation);
  await watchPresence();
  await openConversation(conversation.id);
});

onSubmit("send-form", async () => {
  const text = input("text").value;
  if (!text.trim()) return;
  input("text").value = "";
  await send(text);
});

// History pages on scroll, and with a button for the keyboard.
el("scroller").addEventListener("scroll", () => {
  if (el("scroller").scrollTop < 60) loadOlder().catch(showError);
});
el("older").addEventListener("click", () => {
  loadOlder().catch(showError);
});

// Our typing indicator: sent when typing starts, refreshed while it goes on.
input("text").addEventListener("input", () => {
  if (!input("text").value) {
    if (typingSentAt > 0) void setTyping(false);
  } else if (Date.now() - typingSentAt > TYPING_REFRESH_MS) {
    void setTyping(true);
  } else {
    clearTimeout(typingIdle);
    typingIdle = setTimeout(() => void setTyping(false), TYPING_IDLE_MS);
  }
});

el("signout").addEventListener("click", () => {
  void client?.close();
  sessionStorage.clear();
  location.reload();
});

const saved = sessionStorage.getItem("chat.user");
if (saved) {
  input("user").value = saved;
  signIn(saved).catch(showError);
}
