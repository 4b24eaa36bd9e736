/**
 * What the CPNS Server reports on its `events` emitter ('change'): ids, epochs, reasons and flags only — never key
 * material. The operator surface (src/admin) streams these to the console.
 */
export interface ChangeEvent {
  /** e.g. 'sg.create', 'sg.delete', 'member.add', 'member.remove', 'key.update', 'key.ack', 'pn.change'. */
  kind: string;
  sgId?: string;
  epoch?: number;
  reason?: string;
  pneId?: string;
  gwId?: string;
  identity?: string;
  online?: boolean;
}
