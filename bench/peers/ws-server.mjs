// Node `ws` peer for the side-by-side benchmarks: PartyKit URLs, parties relay (to every
// other connection of the room), echo, and main (sends "[]" on connect, then relays).
import http from "node:http";
import { WebSocketServer } from "ws";

const port = Number(process.env.PORT ?? 1999);
const rooms = new Map();
const server = http.createServer((_req, res) => {
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20, perMessageDeflate: false });
server.on("upgrade", (req, socket, head) => {
  const m = /^\/parties\/([^/]+)\/([^/?]+)/.exec(req.url ?? "");
  if (!m || !["relay", "echo", "main"].includes(m[1])) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const [, party, room] = m;
    if (party === "echo") {
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      return;
    }
    const key = `${party}/${room}`;
    let members = rooms.get(key);
    if (!members) rooms.set(key, (members = new Set()));
    members.add(ws);
    if (party === "main") ws.send("[]");
    ws.on("message", (data, isBinary) => {
      for (const peer of members) if (peer !== ws) peer.send(data, { binary: isBinary });
    });
    ws.on("close", () => {
      members.delete(ws);
      if (members.size === 0) rooms.delete(key);
    });
  });
});
server.listen(port, "127.0.0.1", () => console.log(`ws peer listening on ${port}`));
