// The echo party for `partykit dev`: every message goes back to its sender.
export default class Echo {
  onMessage(message, sender) {
    sender.send(message);
  }
}
