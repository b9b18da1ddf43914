// A terminal chat client on the SDK: `npm run chat -- --user alice`. Type /help for commands.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import {
  type Conversation,
  ConversationKind,
  MembershipAction,
  type Message,
  ReceiptKind,
} from "../gen/chat/v1/types_pb.ts";
import { ChatClient, parseRegions, type RegionEndpoint } from "./index.ts";

const HELP = `commands:
  /dm <user>                  open the direct conversation with a user
  /group <title> <user>...    create a group with these users
  /list                       list your conversations
  /open <number|id>           switch to a conversation from /list
  /add <user>...              add users to the current group
  /remove <user>...           remove users from the current group
  /leave                      leave the current group
  /history [count]            show older messages of the current conversation
  /who                        show members and who is online
  /read                       mark the current conversation read
  /help                       this text
  /quit                       exit
anything else is sent to the current conversation`;

const USAGE = `usage: npm run chat -- --user <name> [--device <id>] [--json]
         [--url ws://host:8080/ws | --regions <name>=ws://host:port/ws,...]
         [--issuer http://host:8090 | --issuer <name>=http://host:port,...]

  --url       one region's gateway (default $CHAT_URL, else ws://127.0.0.1:8080/ws)
  --regions   several regions, e.g.
              us-east-1=ws://127.0.0.1:8080/ws,eu-west-1=ws://127.0.0.1:9080/ws:
              the client connects to the nearest and switches when it is lost
  --issuer    the token issuer (default $CHAT_ISSUER, else http://127.0.0.1:8090), or one per
              region, name=url,... (regions started on their own each sign their own tokens)`;

const { values } = parseArgs({
  options: {
    user: { type: "string", short: "u" },
    device: { type: "string", short: "d", default: "terminal" },
    url: { type: "string" },
    regions: { type: "string" },
    issuer: { type: "string", default: process.env.CHAT_ISSUER ?? "http://127.0.0.1:8090" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help || !values.user) {
  process.stdout.write(`${USAGE}\n\n${HELP}\n`);
  process.exit(values.help ? 0 : 2);
}

/** fail reports a bad command line the way usage errors are: on stderr, exit code 2. */
function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

if (values.url !== undefined && values.regions !== undefined) {
  fail("give --url (one region) or --regions, not both");
}
let regions: RegionEndpoint[] | undefined;
if (values.regions !== undefined) {
  try {
    regions = parseRegions(values.regions);
  } catch (err) {
    fail(`--regions: ${(err as Error).message}`);
  }
}
const url = values.url ?? process.env.CHAT_URL ?? "ws://127.0.0.1:8080/ws";
const issuers = issuersByRegion(values.issuer, regions);

/**
 * issuersByRegion reads --issuer: one URL signs for every region (as one identity provider
 * does), or name=url,... gives each region its own (local regions each run a dev issuer).
 */
function issuersByRegion(arg: string, regions: RegionEndpoint[] | undefined): Map<string, string> {
  const byRegion = new Map<string, string>();
  if (URL.canParse(arg)) return byRegion;
  if (!regions) fail("--issuer: name=url entries need --regions");
  for (const entry of arg.split(",").map((e) => e.trim())) {
    const [name = "", issuerUrl = ""] = entry.split(/=(.*)/);
    if (!URL.canParse(issuerUrl)) fail(`--issuer: bad entry "${entry}": expected name=url`);
    if (!regions.some((r) => r.name === name)) {
      fail(`--issuer: bad entry "${entry}": no region ${name} in --regions`);
    }
    byRegion.set(name, issuerUrl);
  }
  const missing = regions.find((r) => !byRegion.has(r.name));
  if (missing) fail(`--issuer: no issuer for region ${missing.name}`);
  return byRegion;
}

const user = values.user;
const color = process.stdout.isTTY;
const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[0m` : s);

async function token(target: { region: string }): Promise<string> {
  const issuer = issuers.get(target.region) ?? values.issuer;
  const res = await fetch(`${issuer}/token?user=${encodeURIComponent(user)}`);
  const body = (await res.json()) as { token?: string; error?: string };
  if (!res.ok || !body.token) throw new Error(body.error ?? `token request failed: ${res.status}`);
  return body.token;
}

const client = new ChatClient({
  ...(regions ? { regions } : { url }),
  token,
  deviceId: values.device,
  encoding: values.json ? "json" : "proto",
  client: "connect-chat-terminal",
});
const rl = createInterface({
  input: process.stdin,
  output: process.stdout,
  terminal: process.stdin.isTTY,
});
const conversations = new Map<string, Conversation>();
let listed: Conversation[] = [];
let current: Conversation | undefined;
let oldest: Message | undefined;

function say(line: string) {
  if (process.stdout.isTTY) {
    process.stdout.write("\r\x1b[K");
    process.stdout.write(`${line}\n`);
    rl.prompt(true);
  } else {
    process.stdout.write(`${line}\n`);
  }
}

function label(c: Conversation | undefined, id: string): string {
  if (!c) return id.slice(0, 8);
  if (c.kind === ConversationKind.GROUP) return `#${c.title || c.id.slice(0, 8)}`;
  return `@${c.memberIds.find((m) => m !== user) ?? c.id.slice(0, 8)}`;
}

function render(m: Message): string {
  const where = label(conversations.get(m.conversationId), m.conversationId);
  const time = new Date(Number(m.hlc >> 16n)).toTimeString().slice(0, 5);
  if (m.content.case === "membership") {
    const c = m.content.value;
    const verb = {
      [MembershipAction.CREATED]: `created ${c.title ? `"${c.title}" ` : ""}with`,
      [MembershipAction.ADDED]: "added",
      [MembershipAction.REMOVED]: "removed",
      [MembershipAction.LEFT]: "left",
    }[c.action as number];
    const who = c.action === MembershipAction.LEFT ? "" : ` ${c.userIds.join(", ")}`;
    return dim(`${time} ${where} * ${m.senderId} ${verb ?? "changed members"}${who}`);
  }
  const text = m.content.case === "text" ? m.content.value : "";
  return `${dim(time)} ${where} ${bold(m.senderId)}: ${text}`;
}

async function known(id: string): Promise<Conversation | undefined> {
  if (!conversations.has(id)) {
    try {
      conversations.set(id, await client.getConversation(id));
    } catch {
      return undefined;
    }
  }
  return conversations.get(id);
}

/** setPrompt shows the region connected to and the conversation open, e.g. `[eu-west-1] @bob> `. */
function setPrompt() {
  const where = client.state === "connected" ? client.region : "offline";
  rl.setPrompt(`[${where}] ${current ? `${label(current, current.id)}> ` : "> "}`);
}

function open(c: Conversation) {
  conversations.set(c.id, c);
  current = c;
  oldest = undefined;
  setPrompt();
  say(dim(`now in ${label(c, c.id)} (${c.memberIds.join(", ")})`));
}

client.on("message", async (m) => {
  await known(m.conversationId);
  if (m.content.case === "membership" && m.conversationId === current?.id) {
    current = await client.getConversation(m.conversationId).catch(() => current);
  }
  if (m.senderDeviceId === values.device && m.senderId === user) return; // our own echo
  say(render(m));
});
client.on("typing", (t) => {
  if (t.active && t.conversationId === current?.id) say(dim(`${t.userId} is typing…`));
});
client.on("receipt", (r) => {
  if (r.kind === ReceiptKind.READ && r.userId !== user && r.conversationId === current?.id) {
    say(dim(`${r.userId} read up to here`));
  }
});
client.on("presence", (p) => say(dim(`${p.userId} is ${p.online ? "online" : "offline"}`)));
let switched: { from?: string; reason: string } | undefined;
client.on("region", (r) => {
  switched = r;
});
client.on("connected", (w) => {
  setPrompt();
  if (switched?.from !== undefined) {
    say(dim(`connected to ${w.region} (switched from ${switched.from}: ${switched.reason})`));
  } else {
    say(dim(`connected to ${w.region} as ${w.userId} (device ${w.deviceId})`));
  }
  switched = undefined;
});
client.on("disconnected", (d) => {
  setPrompt();
  const retry = d.reconnectInMs !== undefined ? `; reconnecting in ${d.reconnectInMs} ms` : "";
  say(dim(`disconnected (${d.code}${d.reason ? ` ${d.reason}` : ""})${retry}`));
});
client.on("error", (e) => say(`error: ${e.message}`));

async function command(line: string) {
  const [cmd, ...args] = line.trim().split(/\s+/);
  switch (cmd) {
    case "/help":
      return say(HELP);
    case "/quit":
      await client.close();
      rl.close();
      return process.exit(0);
    case "/dm":
      if (!args[0]) return say("usage: /dm <user>");
      return open(await client.createDirect(args[0]));
    case "/group":
      if (args.length < 2) return say("usage: /group <title> <user>...");
      return open(await client.createGroup(args[0] as string, args.slice(1)));
    case "/list": {
      listed = (await client.listConversations()).conversations;
      if (listed.length === 0)
        return say("no conversations yet: /dm <user> or /group <title> <users>");
      for (const c of listed) await known(c.id);
      return say(
        listed
          .map((c, i) => `  ${i + 1}. ${label(conversations.get(c.id), c.id)}  ${dim(c.id)}`)
          .join("\n"),
      );
    }
    case "/open": {
      const arg = args[0] ?? "";
      const picked = listed[Number(arg) - 1] ?? (await known(arg));
      if (!picked) return say("no such conversation; try /list");
      return open(await client.getConversation(picked.id));
    }
    case "/history": {
      if (!current) return say("open a conversation first");
      const page = await client.history(current.id, {
        before: oldest,
        limit: Number(args[0] ?? 20),
      });
      if (page.messages.length === 0) return say(dim("(no older messages)"));
      oldest = page.messages[0];
      return say(page.messages.map(render).join("\n"));
    }
    case "/add":
    case "/remove":
    case "/leave": {
      if (!current) return say("open a conversation first");
      const c =
        cmd === "/add"
          ? await client.addMembers(current.id, args)
          : cmd === "/remove"
            ? await client.removeMembers(current.id, args)
            : await client.leave(current.id);
      conversations.set(c.id, c);
      if (cmd === "/leave") {
        current = undefined;
        setPrompt();
        return say(dim("left"));
      }
      current = c;
      return say(dim(`members: ${c.memberIds.join(", ")}`));
    }
    case "/who": {
      if (!current) return say("open a conversation first");
      const others = current.memberIds.filter((m) => m !== user);
      const presence = await client.watchPresence(others);
      const online = new Set(presence.filter((p) => p.online).map((p) => p.userId));
      return say(
        others.map((m) => `  ${m} ${online.has(m) ? "(online)" : dim("(offline)")}`).join("\n"),
      );
    }
    case "/read": {
      if (!current) return say("open a conversation first");
      const page = await client.history(current.id, { limit: 1 });
      const last = page.messages.at(-1);
      if (last) await client.markRead(current.id, new Map([[last.originRegion, last.seq]]));
      return;
    }
    default:
      return say(`unknown command ${cmd}; /help lists them`);
  }
}

let typingTimer: NodeJS.Timeout | undefined;
rl.on("line", (line) => {
  const text = line.trim();
  const work = async () => {
    if (text === "") return;
    if (text.startsWith("/")) return command(text);
    if (!current) return say("open a conversation first: /dm <user>, /group, or /list then /open");
    clearTimeout(typingTimer);
    await client.send(current.id, text);
  };
  work()
    .catch((err: Error) => say(`error: ${err.message}`))
    .finally(() => rl.prompt());
});
if (process.stdin.isTTY) {
  process.stdin.on("keypress", () => {
    if (!current || typingTimer) return;
    const id = current.id;
    void client.setTyping(id, true).catch(() => undefined);
    typingTimer = setTimeout(() => {
      typingTimer = undefined;
      void client.setTyping(id, false).catch(() => undefined);
    }, 3_000);
  });
}
rl.on("close", () => {
  void client.close().then(() => process.exit(0));
});

setPrompt();
try {
  await client.connect();
} catch (err) {
  const where = regions ? regions.map((r) => r.name).join(", ") : url;
  process.stderr.write(`could not connect to ${where}: ${(err as Error).message}\n`);
  process.exit(1);
}
say(dim("type /help for commands"));
rl.prompt();
