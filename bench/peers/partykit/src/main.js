// The main party for `partykit dev`: "[]" (an empty history) on connect, then relay.
export default class Main {
  constructor(room) {
    this.room = room;
  }
  onConnect(conn) {
    conn.send("[]");
  }
  onMessage(message, sender) {
    this.room.broadcast(message, [sender.id]);
  }
}
