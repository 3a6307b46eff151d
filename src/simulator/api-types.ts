import type { FirmwareFeatures } from './firmware.ts';
import type { PhpArray } from './request-params.ts';
import type { SimulatorState } from './simulator-state.ts';

/** A reply before encoding: `body` is encoded PHP-style unless `raw` is given. */
export interface ApiReply {
  status: number;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

/** PHP exception thrown inside an action; api.php turns it into the reply. */
export class ApiException extends Error {
  readonly reply: ApiReply;
  constructor(reply: ApiReply, message = 'api exception') {
    super(message);
    this.reply = reply;
  }
}

/** OPNsense UserException → 500 with errorMessage/errorTitle. */
export function userException(message: string, title: string): ApiException {
  return new ApiException({ status: 500, body: { errorMessage: message, errorTitle: title } }, message);
}

/** Any other PHP exception or error → 500 with a generic message (details go to the log). */
export function unexpectedError(why: string): ApiException {
  return new ApiException({ status: 500, body: { errorMessage: 'Unexpected error, check log for details' } }, why);
}

export function ok(body: unknown): ApiReply {
  return { status: 200, body };
}

export interface ActionContext {
  method: string;
  isPost: boolean;
  /** Path segments after the action, not URL-decoded. */
  args: string[];
  /** $_POST after parseJsonBodyData. */
  post: PhpArray;
  /** Query-string parameters; only the few actions that use `get()` look at them. */
  query: PhpArray;
  user: string;
  readOnly: boolean;
  state: SimulatorState;
}

export type ActionHandler = (ctx: ActionContext) => ApiReply | Promise<ApiReply>;

export interface Endpoint {
  /** Required positional arguments; fewer → 404 Endpoint not found. */
  requiredArgs: number;
  handler: ActionHandler;
  /** Only in some releases (the filter API from 24.1, savepoints until 26.1): otherwise 404. */
  availableIn?: (features: FirmwareFeatures) => boolean;
}

/** ApiMutableModelControllerBase/alias_util throwReadOnly(). */
export function requireWritable(ctx: ActionContext): void {
  if (ctx.readOnly) {
    throw userException(`User ${ctx.user} denied for write access (user-config-readonly set)`, 'General access');
  }
}
