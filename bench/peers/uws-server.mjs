// uWebSockets.js peer for the side-by-side benchmarks: PartyKit URLs, parties relay (a
// topic per room; ws.publish skips the sender), echo, and main (sends "[]" on connect).
// Messages are published from the message handler, the way uWS.js is commonly used.
import uWS from "@trufflesuite/uws-js-unofficial";

const port = Number(process.env.PORT ?? 1999);
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
      if (party === "echo") ws.send(message, isBinary);
      else ws.publish(`${party}/${room}`, message, isBinary);
    },
  })
  .listen("127.0.0.1", port, (token) => {
    if (!token) {
      console.error(`uws peer cannot listen on ${port}`);
      process.exit(1);
    }
    console.log(`uws peer listening on ${port}`);
  });
