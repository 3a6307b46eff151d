import { productInfo } from '../firmware.ts';
import { ok, type ActionContext, type ApiReply, type Endpoint } from '../api-types.ts';

/**
 * core/firmware/status: a GET reports the installed product without contacting a mirror (a POST
 * would run a synchronous update check first; the simulator has no mirror, so both answer alike).
 */
function status(ctx: ActionContext): ApiReply {
  return ok({
    product: productInfo(ctx.state.firmware),
    status_msg: 'Firmware status requires to check for update first to provide more information.',
    status: 'none',
  });
}

export const firmwareEndpoints: Record<string, Endpoint> = {
  status: { requiredArgs: 0, handler: status },
};
