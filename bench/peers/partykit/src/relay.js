// The relay party for `partykit dev`: every message goes to every other connection.
export default class Relay {
  constructor(room) {
    this.room = room;
  }
  onMessage(message, sender) {
    this.room.broadcast(message, [sender.id]);
  }
}
