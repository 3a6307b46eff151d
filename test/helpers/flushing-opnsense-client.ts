import { OpnsenseClient } from '../../src/targets/opnsense/client.ts';
import { StatusReplySchema } from '../../src/targets/opnsense/replies.ts';

/**
 * The production client with `alias_util/flush` added, for tests only: edgeban never empties a
 * table (bans must survive restarts), so the shipped client has no way to.
 */
export class FlushingOpnsenseClient extends OpnsenseClient {
  async flushAlias(alias: string): Promise<void> {
    const reply = await this.call('POST', `firewall/alias_util/flush/${this.checkedAlias(alias)}`, StatusReplySchema, {});
    this.expectDone(reply, `POST /api/firewall/alias_util/flush/${alias}`, null);
  }
}
