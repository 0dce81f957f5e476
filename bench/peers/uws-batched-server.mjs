// uWebSockets.js peer, "best practice" variant for the side-by-side benchmarks: messages
// are queued in the message handler and published once per event-loop turn (setImmediate),
// inside one cork, which DESIGN.md's field notes measured at 16x the per-message publish.
// Same URLs and parties as uws-server.mjs (relay skips the sender via ws.publish).
import uWS from "@trufflesuite/uws-js-unofficial";

const port = Number(process.env.PORT ?? 1999);
let queue = [];
let scheduled = false;

function flush() {
  scheduled = false;
  const batch = queue;
  queue = [];
  for (const [ws, topic, message, isBinary] of batch) {
    if (!ws.closed) ws.cork(() => ws.publish(topic, message, isBinary));
  }
}

uWS
  .App()
  .ws("/parties/:party/:room", {
    compression: uWS.DISABLED,
    maxPayloadLength: 1 << 20,
    maxBackpressure: 4 << 20,
    idleTimeout: 0,
    upgrade: (res, req, context) => {
      res.upgrade(
        { party: req.getParameter(0), room: req.getParameter(1) },
        req.getHeader("sec-websocket-key"),
        req.getHeader("sec-websocket-protocol"),
        req.getHeader("sec-websocket-extensions"),
        context,
      );
    },
    open: (ws) => {
      const { party, room } = ws.getUserData();
      if (party !== "echo") ws.subscribe(`${party}/${room}`);
      if (party === "main") ws.send("[]");
    },
    message: (ws, message, isBinary) => {
      const { party, room } = ws.getUserData();
      if (party === "echo") {
        ws.send(message, isBinary);
        return;
      }
      // The ArrayBuffer is only valid inside this callback: copy it for the batch.
      queue.push([ws, `${party}/${room}`, message.slice(0), isBinary]);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    close: (ws) => {
      ws.closed = true;
    },
  })
  .listen("127.0.0.1", port, (token) => {
    if (!token) {
      console.error(`uws-batched peer cannot listen on ${port}`);
      process.exit(1);
    }
    console.log(`uws-batched peer listening on ${port}`);
  });
