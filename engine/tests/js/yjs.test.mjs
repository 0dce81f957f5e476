// The unmodified Yjs providers (y-websocket's WebsocketProvider, y-partykit's
// YPartyKitProvider, y-partyserver's YProvider) against partyline's built-in `yjs` party.
// Run by engine/tests/yjs_clients.rs, which starts the server (rooms hibernate after
// 300 ms) and sets PARTYLINE_HOST and YJS_PHASE: "edit" runs every test; "check", after
// the server restarted on the same data, checks the documents "edit" left.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import YPartyKitProvider from "y-partykit/provider";
import YProvider from "y-partyserver/provider";
import WS from "ws";

const host = process.env.PARTYLINE_HOST;
assert.ok(host, "PARTYLINE_HOST must be set");
const phase = process.env.YJS_PHASE || "edit";
const tag = process.env.YJS_TAG || "t";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const providers = {
  "y-websocket": (room, doc) =>
    new WebsocketProvider(`ws://${host}/parties/yjs`, room, doc, { WebSocketPolyfill: WS }),
  "y-partykit": (room, doc) =>
    new YPartyKitProvider(host, room, doc, { party: "yjs", WebSocketPolyfill: WS }),
  "y-partyserver": (room, doc) =>
    new YProvider(host, room, doc, { party: "yjs", WebSocketPolyfill: WS }),
};

/** Resolves when `check()` holds, polling; rejects after `ms`. */
async function until(check, what, ms = 8000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

/** A document joined to `room` through provider `kind`, synced. */
async function join(kind, room) {
  const doc = new Y.Doc();
  const provider = providers[kind](room, doc);
  await until(() => provider.synced, `${kind} synced`);
  return { doc, provider, text: doc.getText("t") };
}

function leave(...peers) {
  for (const p of peers) {
    p.provider.destroy();
    p.doc.destroy();
  }
}

for (const kind of Object.keys(providers)) {
  const room = `${kind}-${tag}`;
  if (phase === "edit") {
    test(`${kind}: concurrent edits converge, a late joiner gets all, awareness and hibernation`, async () => {
      const a = await join(kind, room);
      const b = await join(kind, room);
      a.text.insert(0, "hello");
      await until(() => b.text.toString() === "hello", "b sees a's edit");
      // Concurrent edits at both ends, before either sees the other's.
      a.text.insert(5, " world");
      b.text.insert(0, ">> ");
      await until(
        () => a.text.toString() === b.text.toString() && a.text.length === 14,
        "both converge",
      );
      const agreed = a.text.toString();
      assert.ok(agreed.includes("hello world") && agreed.startsWith(">> "), agreed);
      // Awareness: a's presence reaches b.
      a.provider.awareness.setLocalStateField("user", { name: "ann" });
      await until(
        () => b.provider.awareness.getStates().get(a.doc.clientID)?.user?.name === "ann",
        "b sees ann",
      );
      // Quiet: the room hibernates (300 ms); the sockets stay open.
      await sleep(1200);
      const c = await join(kind, room);
      assert.equal(c.text.toString(), agreed, "a late joiner after a sleep gets the document");
      await until(
        () => c.provider.awareness.getStates().get(a.doc.clientID)?.user?.name === "ann",
        "awareness survives the sleep",
      );
      c.text.insert(c.text.length, "!");
      await until(() => a.text.toString() === agreed + "!", "edits after the wake reach a");
      // Leaving: a's presence is removed at b.
      leave(a);
      await until(() => !b.provider.awareness.getStates().has(a.doc.clientID), "ann leaves");
      leave(b, c);
    });
  } else {
    test(`${kind}: the document survives the restart`, async () => {
      const d = await join(kind, room);
      assert.equal(d.text.toString(), ">> hello world!");
      leave(d);
    });
  }
}
